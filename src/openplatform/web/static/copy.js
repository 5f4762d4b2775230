// Copy buttons: the only script of the management screens (pages work without it).
// A button with data-copy="ID" copies the text of the element with that id.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("copy-status");
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    if (!navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var source = document.getElementById(button.dataset.copy);
      if (!source) return;
      navigator.clipboard.writeText(source.textContent.trim()).then(function () {
        button.setAttribute("data-copied", "");
        if (live) live.textContent = button.getAttribute("aria-label") + ": copied";
        setTimeout(function () { button.removeAttribute("data-copied"); }, 2000);
      });
    });
  });
});
