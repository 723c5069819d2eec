// Budgets: keys whose policy sets a lifetime token or cost limit, with what is used and left,
// most used first. Reads the newest keys (a page of them), not the whole store.

import { api, seg } from "./api.js";
import { fmtInt, fmtUsd, h, section, shortHash } from "./dom.js";

const SCAN = 500;

function limits(key) {
  const b = key.budget || {};
  const out = [];
  if (b.max_tokens > 0) out.push({ used: b.used_tokens || 0, max: b.max_tokens, format: fmtInt, unit: "tokens" });
  if (b.max_cost_usd > 0) out.push({ used: b.used_cost_usd || 0, max: b.max_cost_usd, format: fmtUsd, unit: "" });
  return out;
}

function row(key, limit) {
  const left = Math.max(limit.max - limit.used, 0);
  const label = `${shortHash(key.token_hash)}… ${limit.unit}`.trim();
  return h("div", { class: "budget" },
    h("a", { href: `#/keys/${seg(key.token_hash)}`, class: "mono", title: key.token_hash }, label),
    h("meter", { min: 0, max: limit.max, low: limit.max * 0.75, high: limit.max * 0.9, optimum: 0, value: Math.min(limit.used, limit.max), "aria-label": `${label} used` }),
    h("span", { class: "num" }, `${limit.format(left)} left of ${limit.format(limit.max)}`));
}

export async function budgetsCard() {
  let data;
  try {
    data = await api.get(`/keys?limit=${SCAN}`);
  } catch (err) {
    return section("Budgets", h("p", { class: "error" }, `Keys unavailable: ${err.message}`));
  }
  const rows = [];
  for (const key of data.tokens || []) for (const limit of limits(key)) rows.push({ key, limit, ratio: limit.used / limit.max });
  rows.sort((a, b) => b.ratio - a.ratio);
  const note = data.count > SCAN ? h("p", { class: "muted" }, `Among the newest ${fmtInt(SCAN)} of ${fmtInt(data.count)} keys.`) : null;
  if (!rows.length) return section("Budgets", h("p", { class: "empty" }, "No key has a token or cost budget."), note);
  return section("Budgets", rows.slice(0, 15).map((r) => row(r.key, r.limit)), note);
}
