// Site-wide behaviour. Page-specific scripts go in {% block scripts %}.
(function () {
  "use strict";

  // htmx swaps nothing on an error response or a network failure, so without this the page
  // would look as if the action had worked. Elements that handle errors themselves (e.g.
  // autosave showing a conflict) mark themselves with data-handles-errors.
  function showError(text) {
    var box = document.getElementById("messages");
    if (!box) return;
    var alert = document.createElement("div");
    alert.className = "alert alert-danger alert-dismissible fade show";
    alert.setAttribute("role", "alert");
    alert.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-bs-dismiss", "alert");
    close.setAttribute("aria-label", "Close");
    alert.appendChild(close);
    box.appendChild(alert);
  }

  document.addEventListener("htmx:responseError", function (event) {
    if (event.target.closest("[data-handles-errors]")) return;
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    showError(
      status === 403
        ? "You are not allowed to do that, or your session has expired. Reload the page and sign in again."
        : "Something went wrong (" + status + "). Your last change may not have been saved; reload the page and try again."
    );
  });

  // A read-only field to copy from (a course's join link) selects itself when focused.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-select-on-focus]")) {
      event.target.select();
    }
  });

  // A table wider than the screen scrolls within its .table-responsive box (never the page);
  // keyboard users must be able to scroll it too, so a box that overflows takes focus, named
  // after its table's caption (WCAG 2.1.1; axe-core's scrollable-region-focusable).
  function markScrollableRegions() {
    document.querySelectorAll(".table-responsive").forEach(function (box) {
      var overflows = box.scrollWidth > box.clientWidth + 1;
      if (overflows && !box.hasAttribute("tabindex")) {
        var caption = box.querySelector("caption");
        box.setAttribute("tabindex", "0");
        box.setAttribute("role", "region");
        box.setAttribute(
          "aria-label",
          (caption && caption.textContent.trim()) || "Table (scrolls sideways)"
        );
        box.dataset.scrollRegion = "1";
      } else if (!overflows && box.dataset.scrollRegion) {
        box.removeAttribute("tabindex");
        box.removeAttribute("role");
        box.removeAttribute("aria-label");
        delete box.dataset.scrollRegion;
      }
    });
  }
  markScrollableRegions();
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(markScrollableRegions, 150);
  });
  document.addEventListener("htmx:afterSettle", markScrollableRegions);

  document.addEventListener("htmx:sendError", function (event) {
    if (event.target.closest("[data-handles-errors]")) return;
    showError("The server could not be reached. Check your connection; your last change was not saved.");
  });
})();
