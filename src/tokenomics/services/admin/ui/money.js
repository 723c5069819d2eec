// How a rollup's cost reads: "$1.23", "≥ $1.23" with unpriced requests, "~" when estimated,
// "unpriced" when nothing had a price (cost_usd null).

import { fmtUsd, h } from "./dom.js";

export function costText(rollup) {
  if (!rollup || rollup.cost_usd === null || rollup.cost_usd === undefined) return "unpriced";
  const lower = rollup.unpriced_count ? "≥ " : "";
  const approx = rollup.estimated_count ? "~" : "";
  return `${lower}${approx}${fmtUsd(rollup.cost_usd)}`;
}

/** The cost with its flags spelled out in a title and small tags. */
export function costCell(rollup) {
  const notes = [];
  if (rollup && rollup.unpriced_count) notes.push(h("span", { class: "tag warn", title: "requests without a price: the cost is a lower bound" }, `${rollup.unpriced_count} unpriced`));
  if (rollup && rollup.estimated_count) notes.push(h("span", { class: "tag", title: "token counts estimated locally (the upstream reported none)" }, `${rollup.estimated_count} estimated`));
  return h("span", null, costText(rollup), notes.length ? " " : null, notes);
}

/** A sortable number for spend: the cost when priced, else 0. */
export function spend(rollup) {
  return rollup && typeof rollup.cost_usd === "number" ? rollup.cost_usd : 0;
}
