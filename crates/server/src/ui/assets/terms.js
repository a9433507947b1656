// RDF terms as N-Triples and SPARQL TSV results write them, read into objects and shown
// short (with the repository's prefixes). Shared by the results table and the graph.
"use strict";

const Terms = (function () {
  const XSD = "http://www.w3.org/2001/XMLSchema#";

  function unescape(text) {
    return text.replace(/\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)/g, (_, e) => {
      switch (e[0]) {
        case "t": return "\t";
        case "n": return "\n";
        case "r": return "\r";
        case "b": return "\b";
        case "f": return "\f";
        case "u": case "U": return String.fromCodePoint(parseInt(e.slice(1), 16));
        default: return e;
      }
    });
  }

  // Reads one term of `s` from `i` (after any white space): [term, index after it].
  function read(s, i) {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
    if (i >= s.length) return [null, i];
    const c = s[i];
    if (c === "<" && s[i + 1] === "<") {
      const parts = [];
      let j = i + 2;
      for (let k = 0; k < 3; k++) {
        const [t, next] = read(s, j);
        parts.push(t);
        j = next;
      }
      while (j < s.length && s[j] === " ") j++;
      return [{ type: "triple", value: parts }, j + 2];
    }
    if (c === "<") {
      const end = s.indexOf(">", i);
      const stop = end < 0 ? s.length : end;
      return [{ type: "uri", value: unescape(s.slice(i + 1, stop)) }, stop + 1];
    }
    if (c === "_" && s[i + 1] === ":") {
      let j = i + 2;
      while (j < s.length && !/\s/.test(s[j])) j++;
      return [{ type: "bnode", value: s.slice(i + 2, j) }, j];
    }
    if (c === '"') {
      let j = i + 1;
      while (j < s.length && s[j] !== '"') j += s[j] === "\\" ? 2 : 1;
      const term = { type: "literal", value: unescape(s.slice(i + 1, j)) };
      j++;
      if (s[j] === "@") {
        let k = j + 1;
        while (k < s.length && /[A-Za-z0-9-]/.test(s[k])) k++;
        term.lang = s.slice(j + 1, k);
        j = k;
      } else if (s[j] === "^" && s[j + 1] === "^") {
        const [datatype, next] = read(s, j + 2);
        term.datatype = datatype && datatype.value;
        j = next;
      }
      return [term, j];
    }
    // A bare number or boolean (SPARQL TSV writes them so).
    let j = i;
    while (j < s.length && !/\s/.test(s[j])) j++;
    const value = s.slice(i, j);
    let datatype = XSD + (value === "true" || value === "false" ? "boolean"
      : /[eE]/.test(value) ? "double" : value.includes(".") ? "decimal" : "integer");
    return [{ type: "literal", value, datatype }, j];
  }

  // One TSV cell: a term, or null when unbound.
  function cell(text) {
    return text === "" ? null : read(text, 0)[0];
  }

  // One N-Triples (or N-Quads) line: [subject, predicate, object], or null for a blank
  // or comment line.
  function triple(line) {
    const trimmed = line.trim();
    if (trimmed === "" || trimmed[0] === "#") return null;
    const [s, i] = read(line, 0);
    const [p, j] = read(line, i);
    const [o] = read(line, j);
    return s && p && o ? [s, p, o] : null;
  }

  // The shortest name of an IRI: prefix:local when a namespace fits.
  function shortIri(iri, namespaces) {
    let best = null;
    for (const ns of namespaces) {
      if (iri.startsWith(ns.namespace) && (!best || ns.namespace.length > best.namespace.length)) {
        const local = iri.slice(ns.namespace.length);
        if (/^[A-Za-z0-9_.-]*$/.test(local) && !local.endsWith(".")) best = ns;
      }
    }
    return best ? best.prefix + ":" + iri.slice(best.namespace.length) : "<" + iri + ">";
  }

  // How a term is shown in a table cell or a graph label.
  function show(term, namespaces) {
    if (!term) return "";
    switch (term.type) {
      case "uri": return shortIri(term.value, namespaces);
      case "bnode": return "_:" + term.value;
      case "triple": return "<< " + term.value.map((t) => show(t, namespaces)).join(" ") + " >>";
      default:
        if (term.lang) return term.value + "@" + term.lang;
        if (term.datatype && term.datatype !== XSD + "string" && !/^(integer|decimal|double|boolean)$/.test(term.datatype.slice(XSD.length))) {
          return term.value + "^^" + shortIri(term.datatype, namespaces);
        }
        return term.value;
    }
  }

  // A key that tells terms apart (the graph's nodes).
  function key(term) {
    if (term.type === "literal") return '"' + term.value + '"@' + (term.lang || "") + "^^" + (term.datatype || "");
    if (term.type === "triple") return "<<" + term.value.map(key).join(" ") + ">>";
    return term.type + ":" + term.value;
  }

  return { read, cell, triple, show, shortIri, key };
})();
