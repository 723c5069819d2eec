// Charts drawn as inline SVG through the DOM (no library, nothing inline for the CSP to
// refuse): a stacked column chart of a value per day per series, and horizontal bars. Colours
// come from classes (.c0 … .c7) in app.css; every chart has a text table next to it.

import { h, s, fmtInt } from "./dom.js";

const WIDTH = 720;
const HEIGHT = 240;
const PAD = { left: 64, right: 12, top: 12, bottom: 28 };
export const PALETTE = 8;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** Keep the `limit` largest series by total; fold the rest into "other". */
export function topSeries(seriesTotals, limit = PALETTE - 1) {
  const sorted = Object.entries(seriesTotals).sort((a, b) => b[1] - a[1]);
  const kept = sorted.slice(0, limit).map(([name]) => name);
  return { kept, folded: sorted.length > limit };
}

function axis(max, format) {
  const ticks = [];
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i++) {
    const value = (max * i) / 4;
    const y = PAD.top + plotH - (plotH * i) / 4;
    ticks.push(s("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y, class: "grid" }));
    ticks.push(s("text", { x: PAD.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, format(value)));
  }
  return ticks;
}

/**
 * days: ["2026-12-01", …]; series: names in stacking order; value(day, name) -> number.
 * Returns a <figure> with the SVG, a legend and a collapsible data table.
 */
export function stackedColumns({ title, days, series, value, format = fmtInt }) {
  const totals = days.map((d) => series.reduce((sum, name) => sum + (value(d, name) || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, Math.min(40, slot * 0.7));
  const bars = [];
  days.forEach((day, i) => {
    let y = PAD.top + plotH;
    const x = PAD.left + i * slot + (slot - barW) / 2;
    series.forEach((name, k) => {
      const v = value(day, name) || 0;
      if (v <= 0) return;
      const height = (v / max) * plotH;
      y -= height;
      bars.push(
        s("rect", { x, y, width: barW, height: Math.max(height, 0.5), class: `bar c${k % PALETTE}` },
          s("title", null, `${day} · ${name}: ${format(v)}`)),
      );
    });
    const every = Math.ceil(days.length / 10);
    if (i % every === 0 || i === days.length - 1) {
      bars.push(s("text", { x: x + barW / 2, y: HEIGHT - 8, class: "tick", "text-anchor": "middle" }, day.slice(5)));
    }
  });
  const svg = s(
    "svg",
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": title },
    axis(max, format),
    bars,
  );
  return h("figure", { class: "chart-figure" }, svg, legend(series), dataTable(days, series, value, format));
}

function legend(series) {
  return h(
    "ul",
    { class: "legend" },
    series.map((name, k) => h("li", null, h("span", { class: `swatch c${k % PALETTE}`, "aria-hidden": "true" }), name)),
  );
}

function dataTable(days, series, value, format) {
  return h(
    "details",
    { class: "chart-data" },
    h("summary", null, "Data table"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        null,
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Day"), series.map((n) => h("th", { scope: "col", class: "num" }, n)))),
        h("tbody", null, days.map((d) => h("tr", null, h("th", { scope: "row" }, d), series.map((n) => h("td", { class: "num" }, format(value(d, n) || 0)))))),
      ),
    ),
  );
}

/** Horizontal bars: rows [{label, value, note?}] largest first. */
export function hbars(rows, { format = fmtInt, label = "Top" } = {}) {
  const max = Math.max(0, ...rows.map((r) => r.value)) || 1;
  return h(
    "ol",
    { class: "hbars", "aria-label": label },
    rows.map((row, k) =>
      h(
        "li",
        null,
        h("span", { class: "hbar-label" }, row.label),
        s(
          "svg",
          { class: "hbar", viewBox: "0 0 100 10", preserveAspectRatio: "none", "aria-hidden": "true" },
          s("rect", { x: 0, y: 0, width: Math.max((row.value / max) * 100, 0.5), height: 10, class: `bar c${k % PALETTE}` }),
        ),
        h("span", { class: "hbar-value num" }, format(row.value), row.note ? h("small", null, ` ${row.note}`) : null),
      ),
    ),
  );
}
