// Sessions: one per server process, newest first, with their git context; #/sessions/<id>
// shows one session's breakdowns and its requests, a page at a time.

import { api, seg } from "./api.js";
import { recentTable } from "./analytics.js";
import { fmtInt, fmtTime, h, section, table } from "./dom.js";
import { costCell, costText } from "./money.js";

const PAGE = 50;
const REQUESTS_PAGE = 200;

export async function render(page, params) {
  if (params[0]) return renderOne(page, params[0], Number(params[1]) || 0);
  return renderList(page, 0);
}

function gitText(git) {
  if (!git || !git.branch) return "–";
  const commit = git.commit || git.commit_start;
  return commit ? `${git.branch} @ ${commit}` : git.branch;
}

function pager(offset, count, size, go) {
  if (count <= size) return null;
  const last = Math.min(offset + size, count);
  return h("div", { class: "toolbar" },
    h("button", { type: "button", disabled: offset === 0, on: { click: () => go(Math.max(offset - size, 0)) } }, "Previous"),
    h("span", { class: "muted" }, `${fmtInt(offset + 1)}–${fmtInt(last)} of ${fmtInt(count)}`),
    h("button", { type: "button", disabled: last >= count, on: { click: () => go(offset + size) } }, "Next"));
}

async function renderList(page, offset) {
  const data = await api.get(`/sessions?limit=${PAGE}&offset=${offset}`);
  const sum = data.summary || {};
  const rows = data.sessions || [];
  const go = async (next) => {
    const fresh = h("div");
    await renderList(fresh, next);
    page.replaceChildren(...fresh.childNodes);
  };
  page.append(
    h("h1", null, "Sessions"),
    h("p", { class: "muted" }, `${fmtInt(sum.sessions)} sessions · ${fmtInt(sum.request_count)} requests · ${fmtInt(sum.total_tokens)} tokens · ${costText(sum)}`),
    section("Server sessions", table([
      { label: "Session", cell: (s) => h("a", { href: `#/sessions/${seg(s.session_id)}`, class: "mono" }, s.session_id) },
      { label: "Started", cell: (s) => fmtTime(s.started_at) },
      { label: "Ended", cell: (s) => (s.running ? h("span", { class: "tag ok" }, "running") : fmtTime(s.ended_at)) },
      { label: "Git", cell: (s) => gitText(s.git) },
      { label: "Requests", num: true, cell: (s) => fmtInt(s.totals && s.totals.request_count) },
      { label: "Tokens", num: true, cell: (s) => fmtInt(s.totals && s.totals.total_tokens) },
      { label: "Cost", num: true, cell: (s) => costCell(s.totals) },
    ], rows, { empty: "No sessions in the ledger yet." }), pager(offset, data.count || 0, PAGE, go)),
  );
}

function rollupTable(title, rollups) {
  const rows = Object.entries(rollups || {}).map(([key, r]) => ({ key, ...r }));
  return section(title, table([
    { label: "Name", cell: (r) => r.key || "(unknown)" },
    { label: "Requests", num: true, cell: (r) => fmtInt(r.request_count) },
    { label: "Tokens", num: true, cell: (r) => fmtInt(r.total_tokens) },
    { label: "Cost", num: true, cell: (r) => costCell(r) },
  ], rows));
}

function gitList(git) {
  const entries = Object.entries(git || {});
  if (!entries.length) return h("p", { class: "muted" }, "Not started in a git repository.");
  return h("dl", { class: "kv" }, entries.map(([k, v]) => [h("dt", null, k), h("dd", { class: "mono" }, String(v))]));
}

async function renderOne(page, id, offset) {
  const s = await api.get(`/sessions/${seg(id)}?limit=${REQUESTS_PAGE}&offset=${offset}`);
  const t = s.totals || {};
  const requests = s.requests || []; // in recorded order, a page at a time
  const go = (next) => {
    location.hash = `#/sessions/${seg(s.session_id)}/${next}`;
  };
  page.append(
    h("p", null, h("a", { href: "#/sessions" }, "← All sessions")),
    h("h1", null, "Session ", h("span", { class: "mono" }, s.session_id)),
    h("div", { class: "grid2" },
      section("Overview", h("dl", { class: "kv" },
        h("dt", null, "Started"), h("dd", null, fmtTime(s.started_at)),
        h("dt", null, "Ended"), h("dd", null, s.running ? "running" : fmtTime(s.ended_at)),
        h("dt", null, "Requests"), h("dd", null, fmtInt(t.request_count), ` (${fmtInt(t.error_count)} errors)`),
        h("dt", null, "Tokens"), h("dd", null, `${fmtInt(t.input_tokens)} in · ${fmtInt(t.output_tokens)} out`),
        h("dt", null, "Cost"), h("dd", null, costCell(t)))),
      section("Git", gitList(s.git))),
    h("div", { class: "grid2" }, rollupTable("By model", s.by_model), rollupTable("By provider", s.by_provider)),
    section("Requests", pager(offset, s.request_count || 0, REQUESTS_PAGE, go), recentTable(requests)),
  );
}
