// Keeps the figures of a page live: polls /api/runs every second and writes
// each run's formatted cells into the elements marked data-run / data-field.
// A run the page does not show yet reloads the page once, to add its row.
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token");
  var api = "/api/runs" + (token ? "?token=" + encodeURIComponent(token) : "");
  var status = document.getElementById("live");
  var onList = document.getElementById("runs") !== null;

  function apply(run) {
    var boxes = document.querySelectorAll('[data-run="' + run.id + '"]');
    if (boxes.length === 0) return false;
    boxes.forEach(function (box) {
      box.className = box.className.replace(/\bstate-\S+/, "state-" + run.state);
      box.querySelectorAll("[data-field]").forEach(function (el) {
        var f = el.getAttribute("data-field");
        if (f === "bar") { el.value = run.percent === null ? 0 : run.percent; return; }
        if (f in run.cells && el.textContent !== run.cells[f]) el.textContent = run.cells[f];
      });
    });
    return true;
  }

  function poll() {
    fetch(api, { cache: "no-store" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (body) {
        var missing = false;
        (body.runs || []).forEach(function (run) { if (!apply(run)) missing = true; });
        if (onList && missing) { location.reload(); return; }
        status.textContent = "live, updated " + new Date().toISOString().replace(/\.\d+Z$/, "Z");
        status.classList.remove("stale");
      })
      .catch(function (e) {
        status.textContent = "not updating: " + e.message;
        status.classList.add("stale");
      })
      .finally(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
