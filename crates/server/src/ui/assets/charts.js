// The replication page's charts: lag per peer and transactions per second over the last
// 15 minutes, from the samples the server keeps (a ring, one sample every few seconds),
// drawn as SVG and refreshed while the page is open.
"use strict";

(function () {
  const charts = document.getElementById("charts");
  if (!charts) return;
  const url = charts.dataset.samples;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 520, H = 200, L = 56, R = 12, T = 12, B = 28;
  const COLORS = ["#2f5fd0", "#c2410c", "#1e7a3c", "#7e22ce", "#b3261e", "#0e7490", "#a16207"];

  function svg(tag, attributes) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes || {})) e.setAttribute(k, v);
    return e;
  }

  function nice(max) {
    if (max <= 0) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 5, 10]) if (m * step >= max) return m * step;
    return 10 * step;
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  }

  // series: [{name, points: [[time ms, value]]}]
  function chart(id, title, unit, series, from, to) {
    const max = nice(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
    const x = (t) => L + ((t - from) / (to - from)) * (W - L - R);
    const y = (v) => H - B - (v / max) * (H - T - B);
    const picture = svg("svg", { id, viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": title + ": " + series.map((s) => s.name + " " + (s.points.length ? s.points[s.points.length - 1][1] : "none") + " " + unit).join(", ") });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      picture.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "chart-grid" }));
      const label = svg("text", { x: L - 6, y: y(v) + 4, class: "chart-axis chart-y" });
      label.textContent = String(Number(v.toFixed(2)));
      picture.appendChild(label);
    }
    for (let i = 0; i <= 3; i++) {
      const t = from + ((to - from) * i) / 3;
      const label = svg("text", { x: x(t), y: H - 8, class: "chart-axis chart-x" + (i === 3 ? " chart-x-last" : i === 0 ? " chart-x-first" : "") });
      label.textContent = clock(t);
      picture.appendChild(label);
    }
    series.forEach((s, i) => {
      if (!s.points.length) return;
      picture.appendChild(svg("polyline", {
        class: "chart-line",
        "data-series": s.name,
        stroke: COLORS[i % COLORS.length],
        points: s.points.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join(" "),
      }));
    });
    const figure = document.createElement("figure");
    figure.className = "chart";
    const caption = document.createElement("figcaption");
    caption.textContent = title + " (" + unit + ")";
    const legend = document.createElement("ul");
    legend.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch swatch-" + (i % COLORS.length);
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      item.append(swatch, s.name + (last === null ? "" : ": " + (Number.isInteger(last) ? last : last.toFixed(2))));
      legend.appendChild(item);
    });
    figure.append(caption, picture, legend);
    return figure;
  }

  function draw(data) {
    const samples = data.samples;
    const to = data.now;
    const from = to - data.windowMs;
    const peers = [...new Set(samples.flatMap((s) => Object.keys(s.lagMs)))].sort();
    const lag = peers.map((name) => ({
      name,
      points: samples.filter((s) => name in s.lagMs).map((s) => [s.at, s.lagMs[name]]),
    }));
    const rate = (field) => {
      const points = [];
      for (let i = 1; i < samples.length; i++) {
        const dt = (samples[i].at - samples[i - 1].at) / 1000;
        const dn = samples[i][field] - samples[i - 1][field];
        if (dt > 0 && dn >= 0) points.push([samples[i].at, dn / dt]);
      }
      return points;
    };
    const commits = [
      { name: "committed here", points: rate("committed") },
      { name: "applied from peers", points: rate("applied") },
    ];
    charts.replaceChildren(
      chart("lag-chart", "Lag per peer", "ms", lag, from, to),
      chart("commits-chart", "Transactions per second", "/s", commits, from, to),
    );
    charts.dataset.samples = url;
    charts.dataset.count = String(samples.length);
  }

  function refresh() {
    fetch(url)
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("samples: " + r.status))))
      .then(draw)
      .catch((error) => { charts.dataset.error = error.message; });
  }
  refresh();
  setInterval(refresh, Number(charts.dataset.refreshMs || 5000));
})();
