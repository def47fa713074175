// Seamline dashboards: draws each KPI card's trend sparkline with the vendored Chart.js from
// the JSON in its canvas's data-spark attribute, again after htmx refreshes the cards.
// A file, not an inline script: the pages' CSP allows scripts from 'self' only.
(function () {
  "use strict";

  var COLORS = { green: "#2f855a", amber: "#b7791f", red: "#c53030", none: "#52606d" };

  function statusOf(canvas) {
    var card = canvas.closest("[class*=status-]");
    var found = card ? /status-(\w+)/.exec(card.className) : null;
    return found ? found[1] : "none";
  }

  function draw(canvas) {
    if (!window.Chart || canvas.dataset.drawn) return;
    var data;
    try {
      data = JSON.parse(canvas.dataset.spark || "{}");
    } catch (err) {
      return;
    }
    canvas.dataset.drawn = "1";
    var color = COLORS[statusOf(canvas)] || COLORS.none;
    // the last bucket still running (this week so far): a dashed segment to a hollow point,
    // not a drop of the line
    var values = data.values || [];
    var partial = data.partial === true && values.length > 0;
    var last = values.length - 1;
    function isPartial(i) { return partial && i === last; }
    new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels || [],
        datasets: [{
          data: values,
          borderColor: color,
          backgroundColor: function (ctx) { return isPartial(ctx.dataIndex) ? "#fff" : color; },
          borderWidth: 2,
          pointRadius: function (ctx) { return isPartial(ctx.dataIndex) ? 3 : 2; },
          segment: {
            borderDash: function (ctx) { return isPartial(ctx.p1DataIndex) ? [4, 3] : undefined; },
          },
          spanGaps: true,
          tension: 0.25,
        }],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false }, tooltip: { enabled: true } },
        scales: { x: { display: false }, y: { display: false } },
      },
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("canvas[data-spark]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) {
    drawAll(event.detail && event.detail.elt ? event.detail.elt : document);
  });
})();
