/* The status page's charts: uPlot (inlined beside this script) over the JSON the page carries.
   Times on the axes are UTC. When every chart is drawn, <body data-charts="N"> says how many. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("cio-chart-data").textContent);
  var drawn = 0;

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  // A duration for people, as the tables write them: 42s, 3m, 2h, 3d.
  function duration(s) {
    if (s == null) { return ""; }
    var a = Math.abs(s);
    if (a < 120) { return Math.round(s) + "s"; }
    if (a < 7200) { return Math.round(s / 60) + "m"; }
    if (a < 172800) { return Math.round(s / 3600) + "h"; }
    return Math.round(s / 86400) + "d";
  }

  // One run alone: an hour either side of it, rather than a range of years.
  function around(u, min, max) {
    return min === max ? [min - 3600, max + 3600] : [min, max];
  }

  function draw(id, t, series, format) {
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
      scales: { x: { time: true, range: around } },
      axes: [
        { stroke: "#4a5568" },
        format ? { stroke: "#4a5568", size: 60, values: function (u, splits) { return splits.map(format); } }
               : { stroke: "#4a5568", size: 60 },
      ],
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
  draw("chart-lag", runs.t, [{ label: "lag p95", color: "#1f6feb", values: runs.lag_p95 }], duration);
  var rec = data.reconcile;
  draw("chart-reconcile", rec.t, rec.series.map(function (s, i) {
    return { label: s.label, color: palette[i % palette.length], values: s.gaps };
  }));
  document.body.setAttribute("data-charts", String(drawn));
})();
