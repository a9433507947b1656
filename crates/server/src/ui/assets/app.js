// Forms that ask first (the pages carry no inline script: the Content-Security-Policy
// allows only this file).
document.addEventListener("submit", (event) => {
  const text = event.target.dataset && event.target.dataset.confirm;
  if (text && !confirm(text)) event.preventDefault();
});

// The repository page's upload: sent with XMLHttpRequest, whose upload events give the
// progress of a large file (fetch has none).
(function () {
  const page = document.getElementById("repository");
  const uploadForm = document.getElementById("upload-form");
  // A user who may only read gets no upload form.
  if (!page || !uploadForm) return;
  const base = "/repositories/" + encodeURIComponent(page.dataset.repository);
  const message = document.getElementById("message");
  const progress = document.getElementById("upload-progress");
  const progressText = document.getElementById("upload-progress-text");
  const button = document.getElementById("upload");

  function show(text, kind) {
    message.textContent = text;
    message.className = text ? "message " + kind : "";
  }

  function megabytes(n) {
    return (n / 1048576).toFixed(n < 10485760 ? 2 : 1) + " MB";
  }

  const types = { ttl: "text/turtle", nt: "application/n-triples", nq: "application/n-quads",
    trig: "application/trig", rdf: "application/rdf+xml", owl: "application/rdf+xml",
    xml: "application/rdf+xml", jsonld: "application/ld+json", n3: "text/n3" };

  function refreshSize() {
    return fetch(base + "/size").then((r) => r.text()).then((n) => {
      document.getElementById("size").textContent = n.trim();
    });
  }

  uploadForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = document.getElementById("file").files[0];
    if (!file) return show("Choose a file first.", "error");
    const extension = file.name.split(".").pop().toLowerCase();
    const type = types[extension];
    if (!type) return show("Cannot tell the RDF format of ." + extension + " files.", "error");
    show("", "");
    const request = new XMLHttpRequest();
    request.open("POST", base + "/statements");
    request.setRequestHeader("Content-Type", type);
    progress.max = file.size || 1;
    progress.value = 0;
    progress.hidden = false;
    progressText.textContent = "Sending " + file.name + ": 0 of " + megabytes(file.size);
    button.disabled = true;
    let events = 0;
    request.upload.addEventListener("progress", (e) => {
      events++;
      progress.dataset.events = String(events);
      progress.value = e.loaded;
      const percent = file.size ? Math.floor((100 * e.loaded) / file.size) : 100;
      progressText.textContent = "Sending " + file.name + ": " + megabytes(e.loaded) + " of " + megabytes(file.size) + " (" + percent + "%)";
    });
    request.upload.addEventListener("load", () => {
      progress.value = progress.max;
      progressText.textContent = "Sent " + megabytes(file.size) + "; the server is loading " + file.name + "…";
    });
    request.addEventListener("loadend", () => {
      button.disabled = false;
      progress.hidden = true;
      progressText.textContent = "";
      if (request.status >= 200 && request.status < 300) {
        show("Loaded " + request.responseText.trim() + " statements from " + file.name + ".", "notice");
        refreshSize();
      } else {
        show(request.responseText || "The upload failed (" + (request.status || "no answer") + ").", "error");
      }
    });
    request.send(file);
  });
})();
