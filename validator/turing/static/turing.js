// Keyboard shortcuts of the rater page: R real, S synthetic, 1-5 confidence, Enter next.
(function () {
  "use strict";
  var form = document.getElementById("answer-form");
  if (!form) { return; }
  var keys = { r: "answer-real", s: "answer-synthetic" };
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key.toLowerCase();
    var id = keys[key] || (/^[1-5]$/.test(key) ? "confidence-" + key : null);
    if (id) {
      document.getElementById(id).checked = true;
      event.preventDefault();
    } else if (key === "enter") {
      event.preventDefault();
      if (form.reportValidity()) { form.requestSubmit(); }
    }
  });
  form.addEventListener("submit", function () {
    document.getElementById("next").disabled = true;  // one answer per image
  });
})();
