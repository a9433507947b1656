// The users, roles and namespaces pages: their forms and buttons call the REST API
// (`data-rest-method`, `data-rest-url` with `{field}` filled from the form; the form's
// other fields go as query parameters, or one as the body with `data-rest-body`), then
// the page is drawn again with what changed.
"use strict";

(function () {
  const message = document.getElementById("message");
  if (!message) return;

  function show(text, kind) {
    message.textContent = text;
    message.className = text ? "message " + kind : "";
  }

  function send(method, url, body, done) {
    fetch(url, { method, body, headers: body === undefined ? {} : { "Content-Type": "text/plain" } })
      .then(async (response) => {
        if (!response.ok) throw new Error((await response.text()) || "refused: " + response.status);
        const here = location.pathname;
        location.assign(here + "?notice=" + encodeURIComponent(done));
      })
      .catch((error) => show(error.message, "error"));
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.dataset || !form.dataset.restMethod) return;
    event.preventDefault();
    const used = new Set();
    const url = form.dataset.restUrl.replace(/\{(\w+)\}/g, (_, name) => {
      used.add(name);
      return encodeURIComponent(form.elements[name].value.trim());
    });
    const bodyField = form.dataset.restBody;
    const params = new URLSearchParams();
    for (const element of form.elements) {
      if (!element.name || used.has(element.name) || element.name === bodyField) continue;
      if (element.type === "checkbox" && !element.checked) continue;
      if (element.value !== "") params.append(element.name, element.value);
    }
    const query = params.toString();
    const body = bodyField ? form.elements[bodyField].value.trim() : undefined;
    const done = (form.dataset.done || "Done").replace(/\{(\w+)\}/g, (_, name) => form.elements[name].value.trim());
    send(form.dataset.restMethod, url + (query ? (url.includes("?") ? "&" : "?") + query : ""), body, done + ".");
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-rest-method]");
    if (!button) return;
    event.preventDefault();
    if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
    send(button.dataset.restMethod, button.dataset.restUrl, undefined, (button.dataset.done || "Done") + ".");
  });
})();
