// Analytics: totals, spend over time per model / provider / token / branch, the top spenders,
// budgets with what is left, and the latest requests with their status and rule matches.

import { api, seg } from "./api.js";
import { hbars, PALETTE, stackedColumns, topSeries } from "./chart.js";
import { fmtInt, fmtTime, fmtUsd, h, section, shortHash, table } from "./dom.js";
import { costText, spend } from "./money.js";
import { budgetsCard } from "./budgets.js";

const DIMENSIONS = [
  { key: "model", label: "Model" },
  { key: "provider", label: "Provider" },
  { key: "token", label: "Key" },
  { key: "branch", label: "Branch" },
];
const METRICS = {
  cost: { label: "Cost (USD)", of: (r) => (r && typeof r.cost_usd === "number" ? r.cost_usd : 0), format: fmtUsd },
  tokens: { label: "Tokens", of: (r) => (r ? r.total_tokens || 0 : 0), format: fmtInt },
};

function nameOf(dimension, key) {
  if (key === "") return "(unknown)";
  return dimension === "token" ? `${shortHash(key)}…` : key;
}

export async function render(page) {
  const data = await api.get("/analytics/summary?top=20");
  const view = { metric: anySpend(data) ? "cost" : "tokens", dimension: "model" };
  page.append(
    h("h1", null, "Analytics"),
    h("div", { class: "toolbar" },
      h("span", { class: "muted" }, `From the ledger: ${fmtInt(data.sessions)} sessions (${fmtInt(data.running_sessions)} running). Updated ${fmtTime(data.generated_at)}.`),
      h("span", { class: "spacer" }),
      h("button", { type: "button", on: { click: () => dispatchEvent(new HashChangeEvent("hashchange")) } }, "Refresh")),
    counters(data),
    overTime(data, view),
    h("div", { class: "grid2" },
      section("Top spenders (keys)", topList(data.by_token, "token", view)),
      section("By model", topList(data.by_model, "model", view)),
      section("By provider", topList(data.by_provider, "provider", view)),
      section("By git branch", topList(data.by_branch, "branch", view))),
    await budgetsCard(),
    recentCard(data.recent || []),
  );
}

const RECENT_SHOWN = 10;

function recentCard(rows) {
  const card = section("Recent requests");
  const body = h("div");
  let all = false;
  const toggle = h("button", { type: "button", "aria-expanded": "false", on: { click: () => { all = !all; draw(); } } });
  const draw = () => {
    body.replaceChildren(recentTable(all ? rows : rows.slice(0, RECENT_SHOWN)));
    toggle.textContent = all ? `Show the latest ${RECENT_SHOWN}` : `Show all ${rows.length}`;
    toggle.setAttribute("aria-expanded", String(all));
  };
  draw();
  card.append(body);
  if (rows.length > RECENT_SHOWN) card.append(toggle);
  return card;
}

function anySpend(data) {
  return Boolean(data.totals && typeof data.totals.cost_usd === "number" && data.totals.cost_usd > 0);
}

function counters(data) {
  const t = data.totals || {};
  const item = (label, value, note) => h("div", { class: "counter" }, h("dt", null, label), h("dd", null, value, note ? h("small", null, note) : null));
  return h("dl", { class: "counters", "aria-label": "Totals" },
    item("Spend", costText(t), t.unpriced_count ? `${fmtInt(t.unpriced_count)} unpriced requests` : null),
    item("Requests", fmtInt(t.request_count), `${fmtInt(t.error_count)} errors`),
    item("Tokens", fmtInt(t.total_tokens), `${fmtInt(t.input_tokens)} in · ${fmtInt(t.output_tokens)} out`),
    item("Rule matches", fmtInt(t.rule_violation_count), `${fmtInt(t.rate_limit_count)} rate-limited`),
    item("Keys used", fmtInt(data.token_count), null),
    item("Sessions", fmtInt(data.sessions), `${fmtInt(data.running_sessions)} running`));
}

function overTime(data, view) {
  const days = data.by_day || [];
  const available = DIMENSIONS.filter((d) => days.some((day) => day[`by_${d.key}`]));
  const card = h("section", { class: "card", "aria-labelledby": "over-time" });
  const body = h("div");
  const buttons = [];
  const draw = () => {
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.choice === view.dimension || b.dataset.choice === view.metric));
    body.replaceChildren(days.length ? timeChart(days, view) : h("p", { class: "empty" }, "No requests in the ledger yet."));
  };
  const choice = (kind, value, label) => {
    const b = h("button", { type: "button", "data-choice": value, "aria-pressed": "false", on: { click: () => { view[kind] = value; draw(); } } }, label);
    buttons.push(b);
    return b;
  };
  card.append(
    h("h2", { id: "over-time" }, "Spend over time"),
    h("div", { class: "chart-controls" },
      h("div", { class: "tabs", role: "group", "aria-label": "Break down by" }, available.map((d) => choice("dimension", d.key, `By ${d.label.toLowerCase()}`))),
      h("div", { class: "tabs", role: "group", "aria-label": "Measure" }, Object.entries(METRICS).map(([k, m]) => choice("metric", k, m.label)))),
    body,
  );
  if (!available.some((d) => d.key === view.dimension) && available.length) view.dimension = available[0].key;
  draw();
  return card;
}

// A day's split holds the top keys only; `by_<dimension>_other` sums the rest of the day.
function timeChart(days, view) {
  const metric = METRICS[view.metric];
  const field = `by_${view.dimension}`;
  const rest = (day) => (day && day[`${field}_other`]) || null;
  const totals = {};
  for (const day of days) for (const [name, r] of Object.entries(day[field] || {})) totals[name] = (totals[name] || 0) + metric.of(r);
  const top = topSeries(totals, PALETTE - 1);
  const kept = top.kept;
  const folded = top.folded || days.some((d) => metric.of(rest(d)) > 0);
  const labels = kept.map((k) => nameOf(view.dimension, k));
  const series = folded ? [...labels, "other"] : labels;
  const byLabel = new Map(kept.map((k, i) => [labels[i], k]));
  const value = (dayKey, label) => {
    const day = days.find((d) => d.key === dayKey);
    const breakdown = (day && day[field]) || {};
    if (label !== "other" || !folded) return metric.of(breakdown[byLabel.get(label)]);
    return Object.entries(breakdown).filter(([k]) => !kept.includes(k)).reduce((sum, [, r]) => sum + metric.of(r), metric.of(rest(day)));
  };
  const dimension = DIMENSIONS.find((d) => d.key === view.dimension);
  return stackedColumns({ title: `${metric.label} per day by ${dimension ? dimension.label.toLowerCase() : view.dimension}`, days: days.map((d) => d.key), series, value, format: metric.format });
}

function topList(rows, dimension, view) {
  if (!rows || !rows.length) return h("p", { class: "empty" }, "No requests yet.");
  const useCost = rows.some((r) => spend(r) > 0) && view.metric === "cost";
  const items = rows.slice(0, 10).map((r) => ({
    label: dimension === "token" ? h("a", { href: `#/keys/${seg(r.key)}`, class: "mono", title: r.key }, nameOf(dimension, r.key)) : nameOf(dimension, r.key),
    value: useCost ? spend(r) : r.total_tokens || 0,
    note: useCost ? `${fmtInt(r.total_tokens)} tok` : costText(r),
  }));
  return hbars(items, { format: useCost ? fmtUsd : fmtInt, label: `Top by ${dimension}` });
}

function statusTag(entry) {
  const code = entry.status_code;
  const kind = code >= 500 ? "bad" : code >= 400 ? "warn" : "ok";
  return h("span", { class: `tag ${kind}`, title: entry.error || null }, String(code ?? "–"));
}

function rulesCell(entry) {
  const matches = entry.rule_matches || [];
  if (!matches.length) return "–";
  return h("span", null, matches.map((m) => h("span", { class: `tag ${m.action === "fail" ? "bad" : "warn"}`, title: m.message || null }, `${m.action}${m.name ? `: ${m.name}` : ""}`)));
}

export function recentTable(rows) {
  return table([
    { label: "Time", cell: (r) => h("time", { datetime: r.timestamp, class: "nowrap" }, fmtTime(r.timestamp)) },
    { label: "Key", cell: (r) => (r.token_hash ? h("a", { href: `#/keys/${seg(r.token_hash)}`, class: "mono", title: r.token_hash }, shortHash(r.token_hash)) : "–") },
    { label: "Model", cell: (r) => r.model || "–" },
    { label: "Provider", cell: (r) => r.provider || "–" },
    { label: "Status", cell: statusTag },
    { label: "In", num: true, cell: (r) => fmtInt(r.input_tokens) },
    { label: "Out", num: true, cell: (r) => fmtInt(r.output_tokens) },
    { label: "Cost", num: true, cell: (r) => (r.unpriced ? "unpriced" : `${r.estimated ? "~" : ""}${fmtUsd(r.cost_usd)}`) },
    { label: "Rules", cell: rulesCell },
    { label: "Error", cell: (r) => r.error || "" },
  ], rows, { empty: "No requests yet." });
}


