// Charts from data the page embeds with json_script, drawn with Chart.js (served from our static files).
"use strict";

window.reviewCharts = (function () {
  const read = (id) => { const node = document.getElementById(id); return node ? JSON.parse(node.textContent) : null; };
  const charts = {};

  function line(canvasId, labels, datasets, yTitle) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || !window.Chart) return null;
    charts[canvasId] = new Chart(canvas, {
      type: "line",
      data: {labels, datasets},
      options: {animation: false, maintainAspectRatio: false, scales: {y: {beginAtZero: true, title: {display: !!yTitle, text: yTitle}}}},
    });
    return charts[canvasId];
  }

  // Project page: corrections per image for each model version (fewer is better).
  const corrections = read("corrections-data");
  if (corrections && window.Chart) {
    charts.corrections = new Chart(document.getElementById("corrections-chart"), {
      type: "bar",
      data: {
        labels: corrections.map((r) => r.label),
        datasets: [
          {label: "corrections per image", data: corrections.map((r) => r.corrections_per_image), backgroundColor: "#2563eb"},
          {label: "predictions kept (share)", data: corrections.map((r) => r.acceptance_rate), backgroundColor: "#16a34a"},
        ],
      },
      options: {animation: false, maintainAspectRatio: false, scales: {y: {beginAtZero: true}}},
    });
  }

  // Project page, drift monitor: per day, one line per model version shown.
  const drift = read("drift-data");
  if (drift && drift.length) {
    const days = [...new Set(drift.map((r) => r.day))].sort();
    const versions = [...new Set(drift.map((r) => r.label))];
    const palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
    const series = (field) => versions.map((label, n) => ({
      label, borderColor: palette[n % palette.length], spanGaps: true,
      data: days.map((day) => { const row = drift.find((r) => r.day === day && r.label === label); return row ? row[field] : null; }),
    }));
    line("drift-corrections", days, series("corrections_per_image"), "corrections per image");
    line("drift-acceptance", days, series("acceptance_rate"), "share of predictions kept");
    line("drift-seconds", days, series("seconds_per_image"), "seconds per image");
  }

  // Models page: holdout mAP per version.
  const versions = read("versions-data");
  if (versions) {
    line("map-chart", versions.map((v) => `v${v.number}`), [
      {label: "holdout mAP", data: versions.map((v) => v.map), borderColor: "#2563eb"},
      {label: "holdout AP50", data: versions.map((v) => v.ap50), borderColor: "#16a34a"},
    ], "score");
  }

  // Thresholds page: precision, recall and F1 against the score threshold, one curve (class) at a time.
  const thresholds = read("threshold-data");
  const curveSelect = document.getElementById("curve-select");
  function thresholdChart(curve) {
    if (charts["threshold-chart"]) charts["threshold-chart"].destroy();
    const series = (field, label, color) => ({
      label, borderColor: color, pointRadius: curve.points.length > 30 ? 0 : 3,  // a short curve shows its points
      data: curve.points.map((p) => ({x: p.threshold, y: p[field]})),
    });
    const chart = line("threshold-chart", [], [
      series("precision", "precision", "#2563eb"), series("recall", "recall", "#16a34a"), series("f1", "F1", "#dc2626"),
    ], "");
    if (!chart) return;
    chart.options.scales.x = {type: "linear", min: 0, max: 1, title: {display: true, text: "score threshold"}};
    chart.options.scales.y.max = 1;
    chart.update();
  }
  if (thresholds && thresholds.length && curveSelect) {
    thresholdChart(thresholds[0]);
    curveSelect.addEventListener("change", () => thresholdChart(thresholds[Number(curveSelect.value)]));
  }

  // Models page: each training run's loss curve and per-epoch mAP, kept live by progress.js events.
  function trainingChart(run) {
    return line(`loss-${run.id}`, run.loss_history.map((p) => p.step), [
      {label: "loss", data: run.loss_history.map((p) => p.loss), borderColor: "#dc2626", pointRadius: 0, yAxisID: "y"},
    ], "loss");
  }
  for (const run of read("training-data") || []) {
    trainingChart(run);
  }
  document.addEventListener("job-update", (event) => {
    const run = event.detail;
    const chart = charts[`loss-${run.id}`];
    if (!chart || !run.loss_history) return;
    chart.data.labels = run.loss_history.map((p) => p.step);
    chart.data.datasets[0].data = run.loss_history.map((p) => p.loss);
    chart.update();
    const epochs = document.getElementById(`epochs-${run.id}`);
    if (epochs) epochs.textContent = run.eval_history.map((e) => `${e.epoch}: ${e.map.toFixed(3)}`).join(", ");
  });
  return charts;
})();
