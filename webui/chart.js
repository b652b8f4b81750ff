// chart.js - small SVG charts drawn by hand (no library): stacked bars and lines over time, sized to their
// container in CSS pixels (so the text is never stretched), with a <title> per bucket for hover and a text summary
// for screen readers. Colours come from CSS classes (series-*), never from inline styles.
"use strict";
import { s, h } from "./lib.js";

const PAD = { top: 14, right: 10, bottom: 22, left: 58 };

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtTick(t, span) {
  const d = new Date(t * 1000);
  if (span <= 2 * 86400) return d.toLocaleTimeString("en-GB", { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleDateString("en-GB", { month: "short", day: "numeric" });
}

// opts: {times, step, series: [{name, cls, values}], kind: "bars"|"lines", yfmt, title, width, height}
export function timeChart(opts) {
  const { times, series, yfmt } = opts;
  const width = Math.max(260, Math.floor(opts.width || 600));
  const height = opts.height || 190;
  const n = times.length;
  const iw = width - PAD.left - PAD.right;
  const ih = height - PAD.top - PAD.bottom;
  const stacked = opts.kind !== "lines";
  let max = 0;
  for (let i = 0; i < n; i++) {
    if (stacked) {
      let sum = 0;
      for (const se of series) sum += se.values[i] || 0;
      max = Math.max(max, sum);
    } else for (const se of series) max = Math.max(max, se.values[i] || 0);
  }
  const ymax = niceMax(max);
  const y = (v) => PAD.top + ih - (v / ymax) * ih;
  const bw = n ? iw / n : iw;
  const svg = s("svg", {
    class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": opts.title + ": " + (opts.summary || ""), "data-max": String(max), "data-points": String(n),
  });
  svg.append(s("title", null, opts.title));
  // grid and y labels
  for (const f of [0, 0.5, 1]) {
    const yy = y(ymax * f);
    svg.append(s("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: yy, y2: yy }));
    svg.append(s("text", { class: "axis", x: PAD.left - 6, y: yy + 4, "text-anchor": "end" }, yfmt(ymax * f)));
  }
  // x labels: first, middle, last bucket
  if (n) {
    const span = times[n - 1] - times[0];
    for (const i of n > 2 ? [0, Math.floor(n / 2), n - 1] : [0]) {
      const x = PAD.left + bw * i + bw / 2;
      const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      svg.append(s("text", { class: "axis", x: i === 0 ? PAD.left : i === n - 1 ? width - PAD.right : x, y: height - 6, "text-anchor": anchor }, fmtTick(times[i], span)));
    }
  }
  const plot = s("g", { class: "plot" });
  svg.append(plot);
  if (stacked) {
    for (let i = 0; i < n; i++) {
      const g = s("g", { class: "bucket" });
      let acc = 0;
      const tip = [fmtTick(times[i], times[n - 1] - times[0]) + " " + new Date(times[i] * 1000).toLocaleDateString("en-GB")];
      for (const se of series) {
        const v = se.values[i] || 0;
        tip.push(se.name + ": " + yfmt(v));
        if (v <= 0) continue;
        const y0 = y(acc), y1 = y(acc + v);
        acc += v;
        g.append(s("rect", {
          class: "bar " + se.cls, x: (PAD.left + bw * i + Math.min(1, bw * 0.1)).toFixed(2), y: y1.toFixed(2),
          width: Math.max(0.8, bw - Math.min(2, bw * 0.2)).toFixed(2), height: Math.max(0.5, y0 - y1).toFixed(2),
        }));
      }
      // an invisible full-height target so that hovering any bucket shows its numbers
      g.append(s("rect", { class: "hit", x: (PAD.left + bw * i).toFixed(2), y: PAD.top, width: bw.toFixed(2), height: ih },
        s("title", null, tip.join("\n"))));
      plot.append(g);
    }
  } else {
    for (const se of series) {
      if (!se.values.some((v) => v > 0)) continue;
      const pts = se.values.map((v, i) => `${(PAD.left + bw * i + bw / 2).toFixed(1)},${y(v || 0).toFixed(1)}`);
      plot.append(s("polyline", { class: "line " + se.cls, points: pts.join(" ") }));
      if (n <= 60) for (let i = 0; i < n; i++) if ((se.values[i] || 0) > 0)
        plot.append(s("circle", { class: "dot " + se.cls, cx: (PAD.left + bw * i + bw / 2).toFixed(1), cy: y(se.values[i]).toFixed(1), r: 2.2 }));
    }
    for (let i = 0; i < n; i++) {
      const tip = [new Date(times[i] * 1000).toLocaleString("en-GB")];
      for (const se of series) tip.push(se.name + ": " + yfmt(se.values[i] || 0));
      plot.append(s("rect", { class: "hit", x: (PAD.left + bw * i).toFixed(2), y: PAD.top, width: bw.toFixed(2), height: ih },
        s("title", null, tip.join("\n"))));
    }
  }
  svg.append(s("line", { class: "baseline", x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0) }));
  return svg;
}

export function legend(series) {
  return h("ul.legend", { "aria-hidden": "true" }, series.map((se) => h("li", null, h("span.swatch." + se.cls), se.name)));
}
