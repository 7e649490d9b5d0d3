// The usage dashboard's charts (Chart.js, served from console/static/console/vendor), drawn from
// the series the page embeds as JSON (#usage-data, console/usage.py).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("usage-data").textContent);
  const colors = { ok: "#2e7d32", failed: "#c62828", cancelled: "#9e9e9e", prompt: "#1565c0", completion: "#ef6c00",
    cached: "#80deea", p50: "#1565c0", p95: "#c62828", spend: "#6a1b9a" };
  const base = { responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } };
  const line = (label, values, color) => ({ label, data: values, borderColor: color, backgroundColor: color,
    spanGaps: true, tension: 0, pointRadius: 2 });
  const bar = (label, values, color) => ({ label, data: values, backgroundColor: color });
  const draw = (id, config) => new Chart(document.getElementById(id), config);
  const stacked = { x: { stacked: true }, y: { stacked: true, beginAtZero: true } };

  window.usageCharts = [
    draw("chart-runs", { type: "bar", data: { labels: data.days, datasets: [
      bar("succeeded", data.succeeded, colors.ok), bar("failed", data.failed, colors.failed),
      bar("cancelled", data.cancelled, colors.cancelled)] }, options: { ...base, scales: stacked } }),
    draw("chart-tokens", { type: "bar", data: { labels: data.days, datasets: [
      bar("prompt", data.prompt_tokens, colors.prompt), bar("completion", data.completion_tokens, colors.completion)] },
      options: { ...base, scales: stacked } }),
    draw("chart-spend", { type: "bar", data: { labels: data.spend_agents, datasets: [
      bar("spend", data.spend, colors.spend)] }, options: { ...base, indexAxis: "y",
      plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } } }),
    draw("chart-failures", { type: "line", data: { labels: data.days, datasets: [
      line("failed runs (%)", data.failure_rate, colors.failed)] },
      options: { ...base, scales: { y: { beginAtZero: true, suggestedMax: 10 } } } }),
    draw("chart-duration", { type: "line", data: { labels: data.days, datasets: [
      line("p50", data.duration_p50, colors.p50), line("p95", data.duration_p95, colors.p95)] },
      options: { ...base, scales: { y: { beginAtZero: true } } } }),
    draw("chart-wait", { type: "line", data: { labels: data.days, datasets: [
      line("p50", data.wait_p50, colors.p50), line("p95", data.wait_p95, colors.p95)] },
      options: { ...base, scales: { y: { beginAtZero: true } } } }),
  ];
  document.getElementById("usage-dashboard").dataset.chartsDrawn = String(window.usageCharts.length);
})();
