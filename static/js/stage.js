// Markdown preview for every textarea marked data-markdown: the server renders and sanitises
// (nh3), so the returned HTML is safe to insert.
(function () {
  "use strict";
  const form = document.getElementById("stage-form");
  if (!form) return;
  const previewUrl = form.dataset.previewUrl;
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
  form.querySelectorAll("textarea[data-markdown]").forEach(function (area) {
    if (area.disabled || !previewUrl) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-link btn-sm px-0 markdown-preview-toggle";
    button.textContent = "Preview";
    button.setAttribute("aria-controls", area.id + "-preview");
    const box = document.createElement("div");
    box.id = area.id + "-preview";
    box.className = "markdown-preview border rounded p-2 mt-1 bg-body-tertiary";
    box.hidden = true;
    box.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", box);
    area.insertAdjacentElement("afterend", button);
    button.addEventListener("click", function () {
      if (!box.hidden) {
        box.hidden = true;
        button.textContent = "Preview";
        return;
      }
      const body = new URLSearchParams({ text: area.value });
      fetch(previewUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrf ? csrf.value : "" },
        body: body,
        credentials: "same-origin",
      })
        // 413 and 429 carry a message for the author (too long, too many, already preparing).
        .then(function (r) {
          return r.ok || r.status === 413 || r.status === 429 ? r.text() : Promise.reject(r.status);
        })
        .then(function (html) {
          box.innerHTML = html;
          box.hidden = false;
          button.textContent = "Hide preview";
        })
        .catch(function () {
          box.textContent = "The preview is not available right now.";
          box.hidden = false;
        });
    });
  });
})();
