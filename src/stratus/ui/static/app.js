// Stratus dashboard: follows a running run (step colours, statuses) and a running attempt's log by polling
// the JSON endpoints. Only textContent and setAttribute are used: nothing from the server becomes markup.
"use strict";

(function () {
  const pollMs = Number(document.body.dataset.pollMs || "2000");

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error(url + " answered " + r.status); }
      return r.json();
    });
  }

  function followRun(root) {
    const runId = root.dataset.run;
    const shownSteps = root.dataset.steps;
    const shownTransfers = Number(root.dataset.transfers);
    function update(data) {
      const names = data.steps.map(function (s) { return s.name; }).join("\n");
      // A new step or a new copy changes the drawing: render the page again. The run ending does too,
      // so the final state is the server's whole page.
      if (names !== shownSteps || data.transfers !== shownTransfers || data.finished) {
        window.location.reload();
        return false;
      }
      data.steps.forEach(function (s) {
        document.querySelectorAll('#dag g.node[data-node="' + CSS.escape(s.name) + '"]').forEach(function (g) {
          const rect = g.querySelector("rect");
          if (rect) { rect.setAttribute("fill", s.fill); rect.setAttribute("stroke", s.stroke); }
          const state = g.querySelector("text.state");
          if (state) { state.textContent = s.status; }
          const site = g.querySelector("text.site");
          if (site && (s.site || s.planned_site)) { site.textContent = s.site || s.planned_site; }
        });
        const row = document.querySelector('#steps tr[data-step="' + CSS.escape(s.name) + '"]');
        if (row) {
          row.querySelector(".step-site").textContent = s.site || "-";
          row.querySelector(".step-attempts").textContent = String(s.attempts);
          row.querySelector(".step-duration").textContent = s.duration;
          const status = row.querySelector(".step-status .status");
          if (status && status.dataset.status !== s.status) { window.location.reload(); return; }
        }
      });
      return true;
    }
    function tick() {
      getJson("/api/runs/" + encodeURIComponent(runId)).then(function (data) {
        if (update(data)) { window.setTimeout(tick, pollMs); }
      }).catch(function () { window.setTimeout(tick, pollMs * 2); });
    }
    window.setTimeout(tick, pollMs);
  }

  function followLog(pre) {
    function tick() {
      getJson(pre.dataset.src).then(function (data) {
        pre.textContent = data.text;
        if (!data.finished) { window.setTimeout(tick, pollMs); }
      }).catch(function () { window.setTimeout(tick, pollMs * 2); });
    }
    window.setTimeout(tick, pollMs);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const run = document.getElementById("run");
    if (run && run.dataset.status === "running") { followRun(run); }
    const log = document.getElementById("log");
    if (log && log.dataset.follow === "yes") { followLog(log); }
  });
})();
