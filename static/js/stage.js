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

// Autosave's answer (lifecycle/partials/save_status.html): mark the questions not saved, and
// put a teammate's merged answers into the form, so the next save does not send back the text
// they replaced.
(function () {
  "use strict";
  const form = document.getElementById("stage-form");
  if (!form) return;

  function setField(name, value) {
    const fields = form.querySelectorAll('[name="' + CSS.escape(name) + '"]');
    const values = Array.isArray(value) ? value.map(String) : [String(value)];
    fields.forEach(function (field) {
      if (field.type === "radio" || field.type === "checkbox") {
        field.checked = values.indexOf(field.value) !== -1;
      } else {
        field.value = values[0] || "";
      }
    });
  }

  function afterSave() {
    const status = document.getElementById("save-status");
    if (status && status.dataset.mergedValues) {
      const merged = JSON.parse(status.dataset.mergedValues);
      Object.keys(merged).forEach(function (name) {
        setField(name, merged[name]);
      });
      delete status.dataset.mergedValues;
    }
    form.querySelectorAll(".autosave-error").forEach(function (slot) {
      const question = slot.closest(".question");
      if (!question) return;
      const invalid = slot.dataset.invalid === "1";
      question.querySelectorAll("input, textarea, select").forEach(function (field) {
        if (field.form !== form || field.type === "hidden") return;
        field.classList.toggle("is-invalid", invalid);
        if (invalid) field.setAttribute("aria-invalid", "true");
        else field.removeAttribute("aria-invalid");
      });
    });
  }
  document.body.addEventListener("htmx:afterSettle", afterSave);

  // Reply boxes beside a question belong to their own forms: typing there is no draft edit.
  form.querySelectorAll(".stage-feedback").forEach(function (box) {
    ["input", "change"].forEach(function (name) {
      box.addEventListener(name, function (event) {
        event.stopPropagation();
      });
    });
  });
})();

// A teammate's save while this page is open: say which questions changed under the reader.
(function () {
  "use strict";
  const form = document.getElementById("stage-form");
  const banner = document.getElementById("draft-changed");
  if (!form || !banner || !form.dataset.pollUrl) return;
  const every = parseInt(form.dataset.pollSeconds || "10", 10) * 1000;
  let told = 0;

  function version() {
    const input = form.querySelector("input[name=draft_version]");
    return input ? parseInt(input.value, 10) || 0 : 0;
  }

  function poll() {
    if (document.hidden) return;
    const seen = version();
    fetch(form.dataset.pollUrl + "?since=" + seen, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) {
        return r.ok ? r.json() : Promise.reject(r.status);
      })
      .then(function (state) {
        if (state.version <= seen || !state.changed.length || state.version === told) return;
        told = state.version;
        const names = state.changed
          .map(function (q) {
            return "“" + q.label + "”";
          })
          .join(", ");
        banner.querySelector(".draft-changed-text").textContent =
          (state.updated_by || "A teammate") +
          " changed " +
          names +
          " since you opened this page. When your draft is saved their changes are merged " +
          "with yours; a question you both changed asks you which text to keep.";
        banner.hidden = false;
      })
      .catch(function () {});
  }
  window.setInterval(poll, every);
})();
