// The repository page's SPARQL workbench: a CodeMirror editor (highlighting, completion
// of keywords and of the repository's prefixes, a failed parse's position marked), the
// history of this browser, saved queries (kept by the server with the repository's
// replicated metadata), results read as a stream a thousand rows at a time, downloads
// the server streams, and CONSTRUCT/DESCRIBE results drawn as a graph.
"use strict";

(function () {
  const page = document.getElementById("repository");
  if (!page || typeof CodeMirror === "undefined") return;
  const repo = page.dataset.repository;
  const base = "/repositories/" + encodeURIComponent(repo);
  const results = document.getElementById("results");
  const message = document.getElementById("message");
  const downloads = document.getElementById("downloads");
  const PAGE = 1000;
  const IDLE_MINUTES = 5;
  let namespaces = [];

  function show(text, kind) {
    message.textContent = text;
    message.className = text ? "message " + kind : "";
  }

  // ---- The editor ----------------------------------------------------------------

  const KEYWORDS = ("SELECT CONSTRUCT DESCRIBE ASK WHERE FROM NAMED PREFIX BASE DISTINCT REDUCED " +
    "OPTIONAL FILTER UNION MINUS GRAPH SERVICE SILENT BIND VALUES UNDEF AS GROUP BY ORDER HAVING " +
    "LIMIT OFFSET ASC DESC INSERT DELETE DATA WITH USING DEFAULT ALL CLEAR DROP LOAD INTO CREATE " +
    "ADD MOVE COPY TO EXISTS NOT IN COUNT SUM MIN MAX AVG SAMPLE GROUP_CONCAT SEPARATOR STR LANG " +
    "LANGMATCHES DATATYPE BOUND IRI URI BNODE RAND ABS CEIL FLOOR ROUND CONCAT STRLEN UCASE LCASE " +
    "ENCODE_FOR_URI CONTAINS STRSTARTS STRENDS STRBEFORE STRAFTER YEAR MONTH DAY HOURS MINUTES " +
    "SECONDS TIMEZONE TZ NOW UUID STRUUID MD5 SHA1 SHA256 SHA384 SHA512 COALESCE IF STRLANG " +
    "STRDT SAMETERM ISIRI ISURI ISBLANK ISLITERAL ISNUMERIC REGEX SUBSTR REPLACE").split(" ");

  function ensurePrefix(cm, prefix) {
    const ns = namespaces.find((n) => n.prefix === prefix);
    const declared = new RegExp("(^|\\s)PREFIX\\s+" + prefix.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&") + ":", "i");
    if (!ns || declared.test(cm.getValue())) return;
    cm.replaceRange("PREFIX " + prefix + ": <" + ns.namespace + ">\n", CodeMirror.Pos(0, 0));
  }

  // Keywords and prefixes that begin the word before the cursor; after PREFIX, whole
  // declarations; a prefixed name taken adds its PREFIX line when missing.
  function hint(cm) {
    const cursor = cm.getCursor();
    const line = cm.getLine(cursor.line);
    let start = cursor.ch;
    while (start > 0 && /[\w:-]/.test(line.charAt(start - 1))) start--;
    const word = line.slice(start, cursor.ch);
    const lower = word.toLowerCase();
    const from = CodeMirror.Pos(cursor.line, start);
    const to = CodeMirror.Pos(cursor.line, cursor.ch);
    let list;
    if (/(^|\s)prefix\s+$/i.test(line.slice(0, start))) {
      list = namespaces
        .filter((ns) => ns.prefix.toLowerCase().startsWith(lower.replace(/:.*$/, "")))
        .map((ns) => ({ text: ns.prefix + ": <" + ns.namespace + ">", className: "hint-prefix" }));
    } else {
      const prefixes = namespaces
        .filter((ns) => (ns.prefix + ":").toLowerCase().startsWith(lower))
        .map((ns) => ({
          text: ns.prefix + ":",
          displayText: ns.prefix + ": " + ns.namespace,
          className: "hint-prefix",
          hint: (cm, data, completion) => {
            cm.replaceRange(completion.text, data.from, data.to);
            ensurePrefix(cm, ns.prefix);
          },
        }));
      const keywords = word.includes(":") ? [] : KEYWORDS
        .filter((k) => k.toLowerCase().startsWith(lower) && k.toLowerCase() !== lower)
        .map((k) => ({ text: k, className: "hint-keyword" }));
      list = keywords.concat(prefixes);
    }
    return { list, from, to };
  }

  const textarea = document.getElementById("query");
  const editor = CodeMirror.fromTextArea(textarea, {
    mode: "application/sparql-query",
    lineNumbers: true,
    matchBrackets: true,
    indentUnit: 2,
    screenReaderLabel: "SPARQL query",
    // Tab leaves the editor (keyboard users move on with it); Ctrl-Enter runs.
    extraKeys: {
      "Ctrl-Enter": () => run(),
      "Cmd-Enter": () => run(),
      "Ctrl-Space": "autocomplete",
      Tab: false,
      "Shift-Tab": false,
    },
    hintOptions: { hint, completeSingle: false },
  });
  // The tests (and a user's own scripts) can reach it.
  page.editor = editor;

  let errorMarks = [];
  function clearErrorMark() {
    for (const mark of errorMarks) mark.clear();
    errorMarks = [];
  }
  editor.on("change", clearErrorMark);

  // A parse error names its position (`error at LINE:COLUMN`): the token there is
  // underlined, or a marker stands where the text ended too early.
  function markError(text) {
    const found = /error at (\d+):(\d+)/.exec(text);
    if (!found) return;
    const line = Math.min(Number(found[1]) - 1, editor.lineCount() - 1);
    const lineText = editor.getLine(line);
    const ch = Math.min(Number(found[2]) - 1, lineText.length);
    // The parser names where it gave up: the token there, or else the one just before
    // (an unknown prefix is reported at the end of its name).
    let start = ch, end = ch;
    if (ch < lineText.length && !/\s/.test(lineText[ch])) {
      while (end < lineText.length && !/\s/.test(lineText[end])) end++;
    } else {
      while (start > 0 && /\s/.test(lineText[start - 1])) start--;
      end = start;
      while (start > 0 && !/\s/.test(lineText[start - 1])) start--;
    }
    if (end > start) {
      errorMarks.push(editor.markText(CodeMirror.Pos(line, start), CodeMirror.Pos(line, end),
        { className: "parse-error", attributes: { title: text } }));
    } else {
      const marker = document.createElement("span");
      marker.className = "parse-error-end";
      marker.title = text;
      marker.textContent = "⚠";
      errorMarks.push(editor.setBookmark(CodeMirror.Pos(line, ch), { widget: marker }));
    }
    editor.setCursor(CodeMirror.Pos(line, ch));
    editor.focus();
    // The parser's list of what it expected can be long: the start is shown, all of it
    // in the mark's title.
    const brief = text.length > 240 ? text.slice(0, 240) + "…" : text;
    show("Syntax error at line " + (line + 1) + ", column " + (ch + 1) + ": " + brief, "error");
  }

  fetch(base + "/namespaces", { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : []))
    .then((list) => { namespaces = list; })
    .catch(() => {});

  // ---- History (this browser) and saved queries (the server) ----------------------

  const historyKey = "quadmesh.history." + repo;
  const historySelect = document.getElementById("history");

  function history() {
    try {
      return JSON.parse(localStorage.getItem(historyKey) || "[]");
    } catch (e) {
      return [];
    }
  }

  function showHistory() {
    const options = [new Option("History (" + history().length + ")", "")];
    for (const [i, item] of history().entries()) {
      const text = item.query.replace(/\s+/g, " ").slice(0, 90);
      options.push(new Option(new Date(item.at).toLocaleTimeString() + " · " + text, String(i)));
    }
    historySelect.replaceChildren(...options);
  }

  function remember(query) {
    const items = history().filter((item) => item.query !== query);
    items.unshift({ query, at: Date.now() });
    localStorage.setItem(historyKey, JSON.stringify(items.slice(0, 50)));
    showHistory();
  }

  historySelect.addEventListener("change", () => {
    const item = history()[Number(historySelect.value)];
    if (historySelect.value !== "" && item) editor.setValue(item.query);
    historySelect.value = "";
  });
  showHistory();

  const saved = document.getElementById("saved");
  const savedUrl = "/ui/repositories/" + encodeURIComponent(repo) + "/queries";
  let savedQueries = [];

  function loadSaved() {
    return fetch(savedUrl).then((r) => (r.ok ? r.json() : [])).then((list) => {
      savedQueries = list;
      const options = [new Option("Saved queries (" + list.length + ")", "")];
      for (const [i, item] of list.entries()) options.push(new Option(item.name, String(i)));
      saved.replaceChildren(...options);
    });
  }
  saved.addEventListener("change", () => {
    const item = savedQueries[Number(saved.value)];
    if (saved.value !== "" && item) {
      editor.setValue(item.query);
      const name = document.getElementById("save-name");
      if (name) name.value = item.name;
    }
    saved.value = "";
  });
  // Saving an empty query deletes the saved query of that name.
  function store(query, done) {
    const name = document.getElementById("save-name").value.trim();
    if (!name) return show("Name the query first.", "error");
    fetch(savedUrl, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: "name=" + encodeURIComponent(name) + "&query=" + encodeURIComponent(query),
    })
      .then(async (r) => {
        if (!r.ok) throw new Error(await r.text());
        show(done + name + ".", "notice");
        return loadSaved();
      })
      .catch((error) => show(error.message, "error"));
  }
  const saveForm = document.getElementById("save-form");
  if (saveForm) {
    saveForm.addEventListener("submit", (event) => {
      event.preventDefault();
      store(editor.getValue(), "Saved the query as ");
    });
    document.getElementById("forget").addEventListener("click", () => {
      if (confirm("Delete the saved query " + document.getElementById("save-name").value.trim() + "?")) {
        store("", "Deleted the saved query ");
      }
    });
  }
  loadSaved().catch(() => {});

  // ---- Running ----------------------------------------------------------------------

  // The lines of a response body, read only as far as asked: the server's stream waits
  // while the page does not read, and stops when the page lets go.
  function lines(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let queue = [], head = 0, rest = "", done = false;
    async function fill(n) {
      while (queue.length - head < n && !done) {
        const { value, done: end } = await reader.read();
        if (end) {
          done = true;
          rest += decoder.decode();
          if (rest !== "") queue.push(rest.replace(/\r$/, ""));
          rest = "";
        } else {
          const parts = (rest + decoder.decode(value, { stream: true })).split("\n");
          rest = parts.pop();
          if (head > 0) { queue = queue.slice(head); head = 0; }
          for (const p of parts) queue.push(p.replace(/\r$/, ""));
        }
      }
    }
    return {
      async take(n) {
        await fill(n);
        const out = queue.slice(head, head + n);
        head += out.length;
        return out;
      },
      async more() {
        await fill(1);
        return queue.length > head;
      },
      cancel() { done = true; reader.cancel().catch(() => {}); },
    };
  }

  let current = null;
  const UPDATE = /^(?:\s|#[^\n]*\n|PREFIX\s+[\w.-]*:\s*<[^>]*>|BASE\s*<[^>]*>)*(INSERT|DELETE|LOAD|CLEAR|DROP|CREATE|WITH|ADD|MOVE|COPY)\b/i;

  async function run() {
    if (current) current.cancel();
    current = null;
    clearErrorMark();
    show("", "");
    downloads.replaceChildren();
    const text = editor.getValue();
    remember(text);
    results.textContent = "Running…";
    const isUpdate = UPDATE.test(text);
    let response;
    try {
      response = await fetch(base, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-www-form-urlencoded",
          Accept: "text/tab-separated-values, application/n-triples;q=0.9, */*;q=0.1",
        },
        body: (isUpdate ? "update=" : "query=") + encodeURIComponent(text),
      });
    } catch (error) {
      results.textContent = "";
      return show(error.message, "error");
    }
    if (!response.ok) {
      results.textContent = "";
      const body = await response.text();
      show(body, "error");
      markError(body);
      return;
    }
    if (isUpdate) {
      results.textContent = "";
      show("Update done.", "notice");
      return refreshSize();
    }
    const type = response.headers.get("content-type") || "";
    const stream = lines(response);
    current = stream;
    if (type.startsWith("text/tab-separated-values")) {
      const [first] = await stream.take(1);
      if (first === "true" || first === "false") {
        results.replaceChildren(paragraph("boolean", "Answer: " + first));
        return;
      }
      const vars = (first || "").split("\t").filter((v) => v !== "").map((v) => v.replace(/^\?/, ""));
      table(stream, vars, (line) => line.split("\t").map(Terms.cell), null);
      offerDownloads(text, [["CSV", "csv", "csv"], ["TSV", "tsv", "tsv"], ["JSON", "json", "srj"]]);
    } else if (type.startsWith("application/n-triples")) {
      const triples = [];
      table(stream, ["subject", "predicate", "object"], (line) => {
        const t = Terms.triple(line);
        if (t) triples.push(t);
        return t;
      }, triples);
      offerDownloads(text, [["N-Triples", "ntriples", "nt"], ["Turtle", "turtle", "ttl"]]);
    } else {
      const pre = document.createElement("pre");
      pre.textContent = await response.text();
      results.replaceChildren(pre);
    }
  }

  function paragraph(id, text) {
    const p = document.createElement("p");
    p.id = id;
    p.className = "muted";
    p.textContent = text;
    return p;
  }

  // Download links: the browser asks the query endpoint itself (format parameter) and
  // writes the streamed answer to a file; nothing is held in the page.
  function offerDownloads(text, formats) {
    const label = document.createElement("span");
    label.className = "muted";
    label.textContent = "Download:";
    const links = formats.map(([name, format, extension]) => {
      const a = document.createElement("a");
      a.className = "download";
      a.id = "download-" + format;
      a.href = base + "?query=" + encodeURIComponent(text) + "&format=" + format;
      a.download = repo + "-results." + extension;
      a.textContent = name;
      return a;
    });
    downloads.replaceChildren(label, ...links);
  }

  // Rows a thousand at a time, read from the stream as they are asked for; the cells
  // move a cursor with the arrow keys (the table is one Tab stop).
  function table(stream, vars, parse, triples) {
    const element = document.createElement("table");
    element.id = "result-table";
    element.tabIndex = 0;
    element.setAttribute("aria-label", "Query results; arrow keys move between cells");
    const head = element.createTHead().insertRow();
    for (const v of vars) {
      const th = document.createElement("th");
      th.textContent = v;
      head.appendChild(th);
    }
    const body = element.createTBody();
    const count = paragraph("row-count", "");
    const more = document.createElement("button");
    more.id = "more-rows";
    more.className = "secondary";
    more.textContent = "Show " + PAGE.toLocaleString("en") + " more rows";
    more.hidden = true;
    let shown = 0;
    let idle = null;

    const views = document.createElement("div");
    views.className = "row views";
    let graphView = null;
    if (triples) {
      const tableTab = tab("Table", "view-table", true);
      const graphTab = tab("Graph", "view-graph", false);
      graphView = document.createElement("div");
      graphView.id = "graph";
      graphView.hidden = true;
      tableTab.addEventListener("click", () => select(false));
      graphTab.addEventListener("click", () => select(true));
      function select(graph) {
        tableTab.setAttribute("aria-selected", String(!graph));
        graphTab.setAttribute("aria-selected", String(graph));
        element.hidden = graph;
        graphView.hidden = !graph;
        if (graph) Graph.draw(graphView, triples, namespaces);
      }
      views.append(tableTab, graphTab);
    }

    async function nextPage() {
      more.disabled = true;
      const batch = [];
      while (batch.length < PAGE) {
        const got = await stream.take(PAGE - batch.length);
        if (got.length === 0) break;
        for (const line of got) {
          const row = parse(line);
          if (row) batch.push(row);
        }
      }
      const fragment = document.createDocumentFragment();
      for (const row of batch) {
        const tr = document.createElement("tr");
        for (let i = 0; i < vars.length; i++) {
          const td = document.createElement("td");
          const term = row[i];
          td.textContent = Terms.show(term, namespaces);
          if (term && term.type === "uri") {
            td.title = term.value + " (Enter or click: DESCRIBE it)";
            td.dataset.iri = term.value;
            td.className = "iri";
          }
          tr.appendChild(td);
        }
        fragment.appendChild(tr);
      }
      body.appendChild(fragment);
      shown += batch.length;
      const hasMore = await stream.more();
      more.hidden = !hasMore;
      more.disabled = false;
      count.textContent = hasMore
        ? "First " + shown.toLocaleString("en") + " rows (more to come)"
        : shown.toLocaleString("en") + (shown === 1 ? " row" : " rows");
      // A stream left waiting holds a query open on the server: let it go after a while.
      clearTimeout(idle);
      if (hasMore) {
        idle = setTimeout(() => {
          stream.cancel();
          more.hidden = true;
          count.textContent = "First " + shown.toLocaleString("en") +
            " rows; the rest was let go after " + IDLE_MINUTES + " idle minutes: run the query again to read further";
        }, IDLE_MINUTES * 60000);
      }
      if (graphView && !graphView.hidden) Graph.draw(graphView, triples, namespaces);
    }
    more.addEventListener("click", () => nextPage().catch((e) => show(e.message, "error")));
    body.addEventListener("click", (event) => {
      const td = event.target.closest("td[data-iri]");
      if (td) describe(td.dataset.iri);
    });
    keyboardCells(element);
    const parts = [count, views, element];
    if (graphView) parts.push(graphView);
    parts.push(more);
    results.replaceChildren(...parts);
    nextPage().catch((e) => show(e.message, "error"));
  }

  function tab(text, id, selected) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = id;
    b.className = "tab";
    b.setAttribute("role", "tab");
    b.setAttribute("aria-selected", String(selected));
    b.textContent = text;
    return b;
  }

  // Arrow keys, Home/End and PageUp/PageDown move the current cell.
  function keyboardCells(table) {
    let r = 0, c = 0;
    function mark() {
      const rows = table.tBodies[0].rows;
      if (rows.length === 0) return;
      r = Math.max(0, Math.min(r, rows.length - 1));
      c = Math.max(0, Math.min(c, rows[r].cells.length - 1));
      for (const old of table.querySelectorAll("td.current")) old.classList.remove("current");
      const cell = rows[r].cells[c];
      cell.classList.add("current");
      cell.scrollIntoView({ block: "nearest", inline: "nearest" });
      table.dataset.row = r;
      table.dataset.column = c;
    }
    table.addEventListener("focus", mark);
    table.addEventListener("keydown", (event) => {
      const moves = { ArrowDown: [1, 0], ArrowUp: [-1, 0], ArrowRight: [0, 1], ArrowLeft: [0, -1],
        PageDown: [20, 0], PageUp: [-20, 0] };
      if (moves[event.key]) {
        r += moves[event.key][0];
        c += moves[event.key][1];
      } else if (event.key === "Home") {
        c = 0;
        if (event.ctrlKey) r = 0;
      } else if (event.key === "Enter") {
        const cell = table.querySelector("td.current[data-iri]");
        if (cell) {
          event.preventDefault();
          describe(cell.dataset.iri);
        }
        return;
      } else if (event.key === "End") {
        c = Infinity;
        if (event.ctrlKey) r = Infinity;
      } else {
        return;
      }
      event.preventDefault();
      mark();
    });
  }

  // An IRI of the results, described in its turn.
  function describe(iri) {
    editor.setValue("DESCRIBE <" + iri + ">");
    run();
  }

  function refreshSize() {
    return fetch(base + "/size").then((r) => r.text()).then((n) => {
      document.getElementById("size").textContent = n.trim();
    });
  }

  document.getElementById("run").addEventListener("click", () => run());
})();
