// Webhook deliveries: events waiting to be delivered (pending) and those that failed every
// attempt (dead), with a Retry button. Present only when the server has the outbox.

import { api, seg } from "./api.js";
import { fmtInt, fmtTime, h, section, table } from "./dom.js";

const STATES = ["pending", "dead"];

export async function render(page) {
  const health = await api.get("/health");
  page.append(h("h1", null, "Webhook deliveries"));
  if (!health.webhooks) {
    page.append(section("Not available", h("p", { class: "muted" }, "This server has no webhook outbox.")));
    return;
  }
  const status = h("p", { class: "validation", role: "status" });
  page.append(status);
  for (const state of STATES) page.append(await stateCard(state, status, page));
}

async function stateCard(state, status, page) {
  const data = await api.get(`/webhooks/deliveries?state=${state}&limit=100`);
  const retry = async (delivery, button) => {
    button.disabled = true;
    try {
      await api.post(`/webhooks/deliveries/${seg(delivery.id)}/retry`);
      status.textContent = `Delivery ${delivery.id} queued again.`;
      const fresh = h("div");
      await render(fresh);
      page.replaceChildren(...fresh.childNodes);
    } catch (err) {
      status.textContent = `Retry failed: ${err.message}`;
      button.disabled = false;
    }
  };
  const title = state === "dead" ? "Failed (every attempt)" : "Pending";
  return section(`${title}: ${fmtInt(data.count)}`, table([
    { label: "Event", cell: (d) => h("span", null, d.event_type, " ", h("small", { class: "mono muted" }, d.event_id)) },
    { label: "Target", cell: (d) => d.target },
    { label: "Attempts", num: true, cell: (d) => fmtInt(d.attempts) },
    { label: "Created", cell: (d) => fmtTime(d.created_at) },
    { label: state === "dead" ? "Last error" : "Next attempt", cell: (d) => (state === "dead" ? d.last_error || "–" : fmtTime(d.next_attempt_at)) },
    { label: "Actions", cell: (d) => {
      const button = h("button", { type: "button", on: { click: () => retry(d, button) } }, "Retry");
      return button;
    } },
  ], data.deliveries || [], { empty: state === "dead" ? "No failed deliveries." : "Nothing waiting." }));
}
