// CONSTRUCT and DESCRIBE results drawn as a graph: SVG, laid out by a small force
// simulation (repulsion between all nodes, springs along edges), at most MAX_NODES nodes
// with a note when the result has more.
"use strict";

const Graph = (function () {
  const MAX_NODES = 300;
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attributes) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes || {})) e.setAttribute(k, v);
    return e;
  }

  // Nodes and edges of the first triples, until MAX_NODES nodes are taken.
  function build(triples) {
    const nodes = new Map();
    const edges = [];
    let cut = false;
    function node(term) {
      const key = Terms.key(term);
      let n = nodes.get(key);
      if (!n) {
        if (nodes.size >= MAX_NODES) return null;
        n = { term, x: 0, y: 0, vx: 0, vy: 0, degree: 0 };
        nodes.set(key, n);
      }
      return n;
    }
    for (const [s, p, o] of triples) {
      const a = node(s);
      const b = a && node(o);
      if (!a || !b) {
        cut = true;
        continue;
      }
      a.degree++;
      b.degree++;
      edges.push({ a, b, predicate: p });
    }
    return { nodes: [...nodes.values()], edges, cut };
  }

  function layout(nodes, edges) {
    const n = nodes.length;
    const radius = 40 * Math.sqrt(n);
    // A deterministic start: a spiral (the same result draws the same picture).
    nodes.forEach((node, i) => {
      const angle = i * 2.399963;
      const r = radius * Math.sqrt((i + 0.5) / n);
      node.x = r * Math.cos(angle);
      node.y = r * Math.sin(angle);
    });
    const rounds = n > 150 ? 150 : 300;
    for (let round = 0; round < rounds; round++) {
      const heat = 1 - round / rounds;
      for (let i = 0; i < n; i++) {
        const a = nodes[i];
        for (let j = i + 1; j < n; j++) {
          const b = nodes[j];
          let dx = a.x - b.x, dy = a.y - b.y;
          let d2 = dx * dx + dy * dy;
          if (d2 < 0.01) { dx = 0.1; dy = 0.1; d2 = 0.02; }
          const f = 400 / d2;
          a.vx += dx * f; a.vy += dy * f;
          b.vx -= dx * f; b.vy -= dy * f;
        }
      }
      for (const e of edges) {
        const dx = e.b.x - e.a.x, dy = e.b.y - e.a.y;
        const d = Math.sqrt(dx * dx + dy * dy) || 0.1;
        const f = (d - 50) * 0.05 / d;
        e.a.vx += dx * f; e.a.vy += dy * f;
        e.b.vx -= dx * f; e.b.vy -= dy * f;
      }
      for (const node of nodes) {
        node.vx -= node.x * 0.01;
        node.vy -= node.y * 0.01;
        const speed = Math.sqrt(node.vx * node.vx + node.vy * node.vy);
        const limit = 20 * heat + 0.5;
        if (speed > limit) { node.vx *= limit / speed; node.vy *= limit / speed; }
        node.x += node.vx;
        node.y += node.vy;
        node.vx *= 0.5;
        node.vy *= 0.5;
      }
    }
  }

  function clip(text, n) {
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }

  function draw(container, triples, namespaces) {
    const { nodes, edges, cut } = build(triples);
    layout(nodes, edges);
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const node of nodes) {
      minX = Math.min(minX, node.x); maxX = Math.max(maxX, node.x);
      minY = Math.min(minY, node.y); maxY = Math.max(maxY, node.y);
    }
    if (!nodes.length) { minX = minY = 0; maxX = maxY = 1; }
    const pad = 60;
    const picture = svg("svg", {
      id: "graph-svg",
      viewBox: [minX - pad, minY - pad, maxX - minX + 2 * pad, maxY - minY + 2 * pad].join(" "),
      role: "img",
      "aria-label": "Graph of " + nodes.length + " nodes and " + edges.length + " edges",
    });
    const defs = svg("defs");
    const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "19", refY: "5",
      markerWidth: "6", markerHeight: "6", orient: "auto-start-reverse" });
    marker.appendChild(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "graph-arrow" }));
    defs.appendChild(marker);
    picture.appendChild(defs);
    const lines = svg("g", { class: "graph-edges" });
    for (const e of edges) {
      const line = svg("line", { x1: e.a.x, y1: e.a.y, x2: e.b.x, y2: e.b.y, "marker-end": "url(#arrow)" });
      const title = svg("title");
      title.textContent = Terms.show(e.predicate, namespaces);
      line.appendChild(title);
      lines.appendChild(line);
      if (edges.length <= 80) {
        const label = svg("text", { x: (e.a.x + e.b.x) / 2, y: (e.a.y + e.b.y) / 2, class: "graph-edge-label" });
        label.textContent = clip(Terms.show(e.predicate, namespaces), 24);
        lines.appendChild(label);
      }
    }
    picture.appendChild(lines);
    const dots = svg("g", { class: "graph-nodes" });
    for (const node of nodes) {
      const g = svg("g", { class: "graph-node graph-" + node.term.type });
      g.appendChild(svg("circle", { cx: node.x, cy: node.y, r: Math.min(14, 6 + node.degree) }));
      const label = svg("text", { x: node.x + 10, y: node.y - 8 });
      label.textContent = clip(Terms.show(node.term, namespaces), 32);
      const title = svg("title");
      title.textContent = Terms.show(node.term, []);
      g.append(title, label);
      dots.appendChild(g);
    }
    picture.appendChild(dots);
    const note = document.createElement("p");
    note.id = "graph-note";
    note.className = "muted";
    note.textContent = nodes.length + " nodes, " + edges.length + " edges" + (cut
      ? " — cut at " + MAX_NODES + " nodes: the table has every statement read so far."
      : " (the statements read so far).");
    container.replaceChildren(note, picture);
  }

  return { draw, MAX_NODES };
})();
