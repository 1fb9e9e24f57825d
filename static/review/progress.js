// Live progress: every element with data-poll-url is refreshed from the API until its job finishes.
"use strict";

(function () {
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  const INTERVAL_MS = 1500;

  function update(row, job) {
    row.dataset.status = job.status;
    const bar = row.querySelector(".bar > span");
    if (bar) bar.style.width = `${job.percent}%`;
    const set = (selector, text) => { const node = row.querySelector(selector); if (node) node.textContent = text; };
    set(".percent", `${job.percent.toFixed(1)}%`);
    set(".done", `${job.progress_done}/${job.progress_total}`);
    // Queued a minute or more: which queue's worker it waits for (JobRun.waiting).
    set(".status", job.status + (job.error ? `: ${job.error}` : "") + (job.waiting ? `: ${job.waiting}` : ""));
    if (job.epoch !== undefined) set(".epoch", String(job.epoch));
    // A training run's worker first freezes the reviewed labels (seconds on a large project): say so.
    const freezing = job.status === "running" && job.snapshot === null;
    if (job.eta_seconds !== undefined) set(".eta", freezing ? "freezing the reviewed labels" :
      job.eta_seconds && !FINISHED.has(job.status) ? `ETA ${Math.round(job.eta_seconds)} s` : "");
    if (job.images_per_second) set(".speed", job.images_per_second.toFixed(1));
    // A finished job has nothing left to cancel: its Cancel button goes with the run.
    if (FINISHED.has(job.status)) row.querySelectorAll(".while-running").forEach((node) => node.remove());
    // A deletion that succeeded takes the row of what it deleted off the page (data-removes: its selector).
    if (job.status === "succeeded" && row.dataset.removes) document.querySelector(row.dataset.removes)?.remove();
    row.dispatchEvent(new CustomEvent("job-update", {detail: job, bubbles: true}));
  }

  async function poll(row) {
    try {
      const response = await fetch(row.dataset.pollUrl, {credentials: "same-origin"});
      if (response.ok) update(row, await response.json());
    } catch (error) { /* the server restarting: try again next tick */ }
    if (!FINISHED.has(row.dataset.status)) setTimeout(() => poll(row), INTERVAL_MS);
  }

  for (const row of document.querySelectorAll("[data-poll-url]")) {
    if (!FINISHED.has(row.dataset.status)) setTimeout(() => poll(row), INTERVAL_MS);
  }
})();
