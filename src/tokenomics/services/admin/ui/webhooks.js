// Webhooks: each configured webhook with its pending and failed (dead-lettered) deliveries,
// a Retry button that sends the failed ones round again, and the deliveries themselves.

import { api } from "./api.js";
import { fmtInt, fmtTime, h, section, table } from "./dom.js";

const STATES = [
  { key: "all", label: "All" },
  { key: "pending", label: "Pending" },
  { key: "dead", label: "Failed" },
];
const LIMIT = 200;

export async function render(page, _params, { notice = "" } = {}) {
  const hooks = (await api.get("/webhooks")).webhooks || [];
  const status = h("p", { class: "validation", role: "status" }, notice);
  const rerender = async (message) => {
    const fresh = h("div");
    await render(fresh, _params, { notice: message });
    page.replaceChildren(...fresh.childNodes);
  };
  const retry = async (hook, button) => {
    button.disabled = true;
    try {
      const done = await api.post("/webhooks/retry", hook ? { webhook: hook.name } : {});
      await rerender(`${fmtInt(done.count)} failed deliver${done.count === 1 ? "y" : "ies"} queued again.`);
    } catch (err) {
      status.textContent = `Retry failed: ${err.message}`;
      button.disabled = false;
    }
  };
  page.append(
    h("h1", null, "Webhooks"),
    status,
    section("Configured webhooks", table([
      { label: "Webhook", cell: (w) => h("span", { class: "mono" }, w.name) },
      { label: "Events", cell: (w) => (w.events && w.events.length ? w.events.join(", ") : "all") },
      { label: "Pending", num: true, cell: (w) => fmtInt(w.pending) },
      { label: "Failed", num: true, cell: (w) => (w.dead ? h("span", { class: "tag bad" }, fmtInt(w.dead)) : "0") },
      { label: "Actions", cell: (w) => {
        if (!w.dead) return "–";
        const button = h("button", { type: "button", "aria-label": `Retry failed deliveries of ${w.name}`, on: { click: () => retry(w, button) } }, "Retry failed");
        return button;
      } },
    ], hooks, { empty: "No webhooks configured (events.webhooks in the configuration)." })),
  );
  if (hooks.length) page.append(await deliveriesCard());
}

async function deliveriesCard() {
  const card = section("Deliveries");
  const body = h("div");
  const buttons = [];
  const show = async (state) => {
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.state === state));
    try {
      const data = await api.get(`/webhooks/deliveries?state=${state}&limit=${LIMIT}`);
      body.replaceChildren(deliveriesTable(data.deliveries || [], state));
    } catch (err) {
      body.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  };
  card.append(
    h("div", { class: "tabs", role: "group", "aria-label": "Deliveries to show" }, STATES.map((s) => {
      const b = h("button", { type: "button", "data-state": s.key, "aria-pressed": "false", on: { click: () => show(s.key) } }, s.label);
      buttons.push(b);
      return b;
    })),
    body,
  );
  await show("all");
  return card;
}

function stateTag(state) {
  const kind = state === "dead" ? "bad" : state === "retry" ? "warn" : "";
  return h("span", { class: `tag ${kind}` }, state === "dead" ? "failed" : state);
}

function deliveriesTable(rows, state) {
  return table([
    { label: "Created", cell: (d) => fmtTime(d.created_at) },
    { label: "Webhook", cell: (d) => h("span", { class: "mono" }, d.webhook) },
    { label: "Event", cell: (d) => d.type },
    { label: "Id", cell: (d) => h("span", { class: "mono" }, d.id) },
    { label: "State", cell: (d) => stateTag(d.state) },
    { label: "Attempts", num: true, cell: (d) => fmtInt(d.attempts) },
    { label: "Error", cell: (d) => d.error || "" },
  ], rows, { empty: state === "dead" ? "No failed deliveries." : state === "pending" ? "Nothing waiting." : "Nothing waiting and nothing failed." });
}
