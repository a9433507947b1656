// Forms that ask first (the pages carry no inline script: the Content-Security-Policy
// allows only this file).
document.addEventListener("submit", (event) => {
  const text = event.target.dataset && event.target.dataset.confirm;
  if (text && !confirm(text)) event.preventDefault();
});

// The repository page: run SPARQL, show results as a table, download them, upload RDF.
(function () {
  const page = document.getElementById("repository");
  if (!page) return;
  const repo = page.dataset.repository;
  const base = "/repositories/" + encodeURIComponent(repo);
  const results = document.getElementById("results");
  const message = document.getElementById("message");

  function show(text, kind) {
    message.textContent = text;
    message.className = text ? "message " + kind : "";
  }

  function query(accept) {
    const text = document.getElementById("query").value;
    return fetch(base, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: accept },
      body: "query=" + encodeURIComponent(text),
    }).then(async (response) => {
      if (!response.ok) throw new Error(await response.text());
      return response;
    });
  }

  function cell(term) {
    if (!term) return "";
    if (term.type === "uri") return "<" + term.value + ">";
    if (term.type === "bnode") return "_:" + term.value;
    return term.value + (term["xml:lang"] ? "@" + term["xml:lang"] : "");
  }

  document.getElementById("run").addEventListener("click", () => {
    show("", "");
    results.textContent = "Running…";
    query("application/sparql-results+json, text/turtle;q=0.5")
      .then(async (response) => {
        const type = response.headers.get("content-type") || "";
        if (!type.includes("json")) {
          const pre = document.createElement("pre");
          pre.textContent = await response.text();
          results.replaceChildren(pre);
          return;
        }
        const data = await response.json();
        if ("boolean" in data) {
          results.textContent = "Answer: " + data.boolean;
          return;
        }
        const table = document.createElement("table");
        table.id = "result-table";
        const head = table.createTHead().insertRow();
        for (const v of data.head.vars) {
          const th = document.createElement("th");
          th.textContent = v;
          head.appendChild(th);
        }
        const body = table.createTBody();
        for (const binding of data.results.bindings) {
          const row = body.insertRow();
          for (const v of data.head.vars) row.insertCell().textContent = cell(binding[v]);
        }
        const count = document.createElement("p");
        count.className = "muted";
        count.id = "row-count";
        count.textContent = data.results.bindings.length + " rows";
        results.replaceChildren(count, table);
      })
      .catch((error) => {
        results.textContent = "";
        show(error.message, "error");
      });
  });

  document.getElementById("download").addEventListener("click", () => {
    query("text/csv")
      .then((response) => response.blob())
      .then((blob) => {
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = repo + "-results.csv";
        link.click();
      })
      .catch((error) => show(error.message, "error"));
  });

  const types = { ttl: "text/turtle", nt: "application/n-triples", nq: "application/n-quads",
    trig: "application/trig", rdf: "application/rdf+xml", owl: "application/rdf+xml",
    xml: "application/rdf+xml", jsonld: "application/ld+json", n3: "text/n3" };

  function refreshSize() {
    return fetch(base + "/size").then((r) => r.text()).then((n) => {
      document.getElementById("size").textContent = n.trim();
    });
  }

  // A user who may only read gets no upload form.
  const uploadForm = document.getElementById("upload-form");
  if (uploadForm) uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = document.getElementById("file").files[0];
    if (!file) return show("Choose a file first.", "error");
    const extension = file.name.split(".").pop().toLowerCase();
    const type = types[extension];
    if (!type) return show("Cannot tell the RDF format of ." + extension + " files.", "error");
    fetch(base + "/statements", { method: "POST", headers: { "Content-Type": type }, body: file })
      .then(async (response) => {
        if (!response.ok) throw new Error(await response.text());
        const added = await response.text();
        show("Loaded " + added + " statements from " + file.name + ".", "notice");
        return refreshSize();
      })
      .catch((error) => show(error.message, "error"));
  });
})();
