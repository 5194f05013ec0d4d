// Staff pages: everything works without this file; it adds live send progress and a live
// Markdown preview of a digest's introduction.
(function () {
  "use strict";

  var live = document.querySelector("[data-progress-url]");
  if (live) {
    var url = live.getAttribute("data-progress-url");
    var started = live.getAttribute("data-status");
    var tick = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          ["queued", "sent", "failed", "skipped"].forEach(function (k) {
            var el = live.querySelector("[data-count=" + k + "]");
            if (el) { el.textContent = Number(p[k]).toLocaleString("en"); }
          });
          var bar = live.querySelector("progress");
          if (bar) { bar.value = p.percent; bar.textContent = p.percent + "%"; }
          var pct = live.querySelector("[data-percent]");
          if (pct) { pct.textContent = p.percent + "%"; }
          if (p.status !== started) { window.location.reload(); return; }
          setTimeout(tick, 2000);
        })
        .catch(function () { setTimeout(tick, 5000); });
    };
    setTimeout(tick, 1000);
  }

  var intro = document.getElementById("intro");
  var preview = document.getElementById("intro-preview");
  if (intro && preview) {
    var form = intro.form;
    var timer = null;
    var render = function () {
      var body = new URLSearchParams();
      body.set("csrf", form.elements.csrf.value);
      body.set("intro", intro.value);
      fetch("/admin/markdown", { method: "POST", credentials: "same-origin", body: body })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { preview.innerHTML = html; } });
    };
    intro.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(render, 300);
    });
  }
})();
