/* The status page's charts: uPlot (inlined beside this script) over the JSON the page carries.
   Times on the axes are UTC. When every chart is drawn, <body data-charts="N"> says how many. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("cio-chart-data").textContent);
  var drawn = 0;

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  function draw(id, t, series) {
    var box = document.getElementById(id);
    if (!box || !t.length) {
      return;
    }
    var width = Math.max(280, box.clientWidth || 360);
    var opts = {
      width: width,
      height: 200,
      tzDate: utc,
      legend: { show: series.length > 1 },
      scales: { x: { time: true } },
      axes: [{ stroke: "#4a5568" }, { stroke: "#4a5568", size: 60 }],
      series: [{}].concat(series.map(function (s) {
        return {
          label: s.label,
          stroke: s.color,
          width: 2,
          spanGaps: true,
          points: { show: true, size: 7, fill: s.color },
        };
      })),
    };
    new uPlot(opts, [t].concat(series.map(function (s) { return s.values; })), box);
    drawn += 1;
  }

  var palette = ["#1f6feb", "#d97706", "#7c3aed", "#059669", "#db2777", "#0891b2", "#65a30d"];
  var runs = data.runs;
  draw("chart-sent", runs.t, [{ label: "sent", color: "#15803d", values: runs.sent }]);
  draw("chart-rejected", runs.t, [{ label: "rejected", color: "#b91c1c", values: runs.rejected }]);
  draw("chart-lag", runs.t, [{ label: "lag p95 (s)", color: "#1f6feb", values: runs.lag_p95 }]);
  var rec = data.reconcile;
  draw("chart-reconcile", rec.t, rec.series.map(function (s, i) {
    return { label: s.label, color: palette[i % palette.length], values: s.gaps };
  }));
  document.body.setAttribute("data-charts", String(drawn));
})();
