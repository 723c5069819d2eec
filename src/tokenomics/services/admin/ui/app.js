// Entry point: a hash router over the pages. Each page module exports
// `render(main, params) -> Promise<void>`; a failing page shows its error and leaves the rest
// of the UI usable (the original stopped booting at the first failed call).

import { api } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import * as analytics from "./analytics.js";
import * as keys from "./keys.js";
import * as sessions from "./sessions.js";
import * as memory from "./memory.js";
import * as webhooks from "./webhooks.js";

const PAGES = { analytics, keys, sessions, memory, webhooks };
const TITLES = { analytics: "Analytics", keys: "Keys", sessions: "Sessions", memory: "Memory", webhooks: "Webhooks" };
let generation = 0;

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const name = Object.hasOwn(PAGES, parts[0]) ? parts[0] : "analytics";
  return { name, params: parts.slice(1).filter(Boolean) };
}

function markNav(name) {
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const { name, params } = parseHash();
  const mine = ++generation;
  const main = document.getElementById("main");
  markNav(name);
  document.title = `${TITLES[name]} · Tokenomics admin`;
  const page = h("div", { class: "page", "data-page": name, "aria-busy": "true" });
  clear(main).append(page);
  try {
    await PAGES[name].render(page, params, { stale: () => mine !== generation });
  } catch (err) {
    if (mine === generation) page.append(errorBox(err));
  } finally {
    page.setAttribute("aria-busy", "false");
  }
}

async function health() {
  const badge = document.getElementById("health");
  try {
    const data = await api.get("/health");
    badge.textContent = `${String(data.status || "ok").toUpperCase()} · ${data.tls_enabled ? "TLS" : "HTTP"}`;
    badge.className = "health ok";
  } catch (err) {
    badge.textContent = `Unreachable: ${err.message}`;
    badge.className = "health bad";
  }
}

window.addEventListener("hashchange", () => {
  route();
  document.getElementById("main").focus({ preventScroll: true });
});
health();
route();
