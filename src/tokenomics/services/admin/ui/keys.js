// Keys: the list (newest first), the editor for a new or existing key, deletion with a
// confirmation. Routes: #/keys, #/keys/new, #/keys/<hash>.

import { api, ApiError, seg } from "./api.js";
import { confirmDialog, secretDialog } from "./confirm.js";
import { append, fmtInt, fmtTime, fmtUsd, h, section, shortHash, table } from "./dom.js";
import { policyEditor } from "./policy_editor.js";

const TEMPLATE = { base_key_env: "OPENAI_API_KEY", max_tokens: 100000 };

const PAGE = 100;

function plural(n, word) {
  return `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;
}

export async function render(page, params) {
  if (params[0] === "new") return renderEditor(page, null);
  if (params[0] && params[0] !== "page") return renderEditor(page, params[0]);
  return renderList(page, Math.max(Number(params[1]) || 0, 0));
}

function providerText(key) {
  return (key.providers || []).map((p) => (p.models && p.models.length ? `${p.name} (${p.models.join(", ")})` : p.name)).join("; ") || "–";
}

function budgetText(key) {
  const b = key.budget || {};
  const parts = [];
  if (b.max_tokens > 0) parts.push(`${fmtInt(b.used_tokens || 0)} of ${fmtInt(b.max_tokens)} tokens`);
  if (b.max_cost_usd > 0) parts.push(`${fmtUsd(b.used_cost_usd || 0)} of ${fmtUsd(b.max_cost_usd)}`);
  if (!parts.length) parts.push(`unlimited (used ${fmtInt(b.used_tokens || 0)} tokens)`);
  return parts.join(" · ");
}

function metadataCell(key) {
  const entries = Object.entries((key.policy && key.policy.metadata) || {});
  if (!entries.length) return "–";
  return h("span", null, entries.map(([k, v]) => h("span", { class: "tag" }, `${k}=${v}`)));
}

async function deleteKey(hash) {
  const yes = await confirmDialog({
    title: "Delete this key?",
    message: `Key ${shortHash(hash)}… stops working at once; requests made with it are refused. This cannot be undone.`,
  });
  if (!yes) return false;
  await api.del(`/keys/${seg(hash)}`);
  return true;
}

function pager(offset, count) {
  if (count <= PAGE) return null;
  const last = Math.min(offset + PAGE, count);
  const link = (to, label, enabled) => (enabled ? h("a", { href: `#/keys/page/${to}`, class: "button" }, label) : h("span", { class: "button", "aria-disabled": "true" }, label));
  return h("nav", { class: "toolbar", "aria-label": "Pages of keys" },
    link(Math.max(offset - PAGE, 0), "Previous", offset > 0),
    h("span", { class: "muted" }, `${fmtInt(offset + 1)}–${fmtInt(last)} of ${fmtInt(count)}`),
    link(offset + PAGE, "Next", last < count));
}

async function renderList(page, offset, notice = "") {
  const data = await api.get(`/keys?limit=${PAGE}&offset=${offset}`);
  const keys = data.tokens || [];
  const status = h("p", { class: "validation", role: "status" }, notice);
  const columns = [
    { label: "Key", cell: (k) => h("a", { href: `#/keys/${seg(k.token_hash)}`, class: "mono", title: k.token_hash }, shortHash(k.token_hash)) },
    { label: "Created", cell: (k) => fmtTime(k.created_at) },
    { label: "Expires", cell: expiryText },
    { label: "Default provider", cell: (k) => (k.policy && k.policy.default_provider) || "–" },
    { label: "Budget", cell: budgetText },
    { label: "Providers", cell: providerText },
    { label: "Metadata", cell: metadataCell },
    {
      label: "Actions",
      cell: (k) =>
        h("div", { class: "actions" },
          h("a", { href: `#/keys/${seg(k.token_hash)}`, class: "button" }, "Edit"),
          h("button", {
            type: "button", class: "danger", "aria-label": `Delete key ${shortHash(k.token_hash)}`,
            on: { click: async () => {
              try {
                if (await deleteKey(k.token_hash)) await refresh(page, offset, "Key deleted.");
              } catch (err) {
                status.textContent = `Delete failed: ${err.message}`;
              }
            } },
          }, "Delete")),
    },
  ];
  page.append(
    h("h1", null, "Keys"),
    h("div", { class: "toolbar" },
      h("a", { href: "#/keys/new", class: "button primary" }, "New key"),
      h("button", { type: "button", on: { click: () => refresh(page, offset, "") } }, "Refresh"),
      h("span", { class: "spacer" }),
      h("span", { class: "muted" }, plural(data.count ?? keys.length, "key"))),
    status,
    section("Wrapper tokens", table(columns, keys, { empty: "No keys yet: create one with New key." }), pager(offset, data.count ?? keys.length)),
  );
}

async function refresh(page, offset, notice) {
  const fresh = h("div");
  await renderList(fresh, offset, notice);
  page.replaceChildren(...fresh.childNodes);
}

let validateRoute = true; // false once the server says it has no validation route

async function validatePolicy(text) {
  if (!validateRoute) return { note: "Well-formed JSON; the server checks the policy when you save." };
  try {
    await api.post("/policy/validate", { policy: text });
    return null;
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) return err.message;
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) {
      validateRoute = false;
      return validatePolicy(text);
    }
    return { note: `Could not check the policy now (${err.message}).` };
  }
}

async function loadChoices() {
  try {
    const env = await api.get("/env-vars");
    const providers = new Set(["mock"]);
    for (const detail of env.details || []) for (const name of detail.providers || []) providers.add(name);
    return { envVars: env.env_vars || [], providers: [...providers].sort() };
  } catch {
    return { envVars: [], providers: [] };
  }
}

async function renderEditor(page, hash) {
  const existing = hash ? await api.get(`/keys/${seg(hash)}`) : null;
  const choices = await loadChoices();
  const template = { ...TEMPLATE, base_key_env: choices.envVars[0] || TEMPLATE.base_key_env };
  const initial = existing ? pretty(existing.policy_raw) : JSON.stringify(template, null, 2);
  const form = h("form", { class: "card", novalidate: true, "aria-labelledby": "editor-title" });
  const expires = h("input", { id: "key-expires", type: "text", autocomplete: "off", placeholder: existing ? "unchanged" : "never" });
  const status = h("p", { id: "save-status", class: "validation", role: "status", "aria-live": "polite" });
  append(form, [
    existing
      ? h("dl", { class: "kv" },
          h("dt", null, "Hash"), h("dd", { class: "mono" }, existing.token_hash),
          h("dt", null, "Created"), h("dd", null, fmtTime(existing.created_at)),
          h("dt", null, "Expires"), h("dd", { id: "key-expires-at" }, expiryText(existing)))
      : null,
    h("div", { class: "field" },
      h("label", { for: "key-expires" }, "Expires ",
        h("span", { class: "hint" }, existing ? "30d, 12h, 1y or an RFC 3339 time; empty leaves it unchanged; clear removes it" : "30d, 12h, 1y or an RFC 3339 time; empty = never")),
      expires),
  ]);
  const editorRoot = h("div");
  form.append(editorRoot);
  const editor = policyEditor(editorRoot, { initial, validate: validatePolicy, ...choices });
  const save = h("button", { type: "submit", class: "primary" }, existing ? "Save changes" : "Create key");
  const buttons = h("div", { class: "actions" }, save, h("a", { href: "#/keys", class: "button" }, "Cancel"));
  if (existing) {
    buttons.append(h("button", { type: "button", class: "danger", on: { click: async () => {
      try {
        if (await deleteKey(existing.token_hash)) location.hash = "#/keys";
      } catch (err) {
        status.textContent = `Delete failed: ${err.message}`;
      }
    } } }, "Delete key"));
  }
  form.append(buttons, status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit({ existing, editor, expires, status, save });
  });
  page.append(h("h1", { id: "editor-title" }, existing ? `Key ${shortHash(existing.token_hash)}…` : "New key"), form);
}

function expiryText(key) {
  if (!key.expires_at) return "never";
  return `${fmtTime(key.expires_at)}${key.expired ? " (expired)" : ""}`;
}

function pretty(raw) {
  try {
    return JSON.stringify(JSON.parse(raw), null, 2);
  } catch {
    return String(raw ?? "");
  }
}

async function submit({ existing, editor, expires, status, save }) {
  status.className = "validation";
  status.textContent = "Saving…";
  save.disabled = true;
  const body = { policy: editor.text(), expires: expires.value.trim() };
  try {
    if (existing) {
      const saved = await api.put(`/keys/${seg(existing.token_hash)}`, body);
      status.className = "validation ok";
      status.textContent = "Saved.";
      expires.value = "";
      const shown = document.getElementById("key-expires-at");
      if (shown && saved && saved.key) shown.textContent = expiryText(saved.key);
      return;
    }
    const created = await api.post("/keys", body);
    status.className = "validation ok";
    status.textContent = `Created key ${shortHash(created.hash)}…`;
    await secretDialog({
      title: "Key created",
      secret: created.token,
      details: h("dl", { class: "kv" },
        h("dt", null, "Hash"), h("dd", { class: "mono" }, created.hash),
        h("dt", null, "Expires"), h("dd", null, created.expires ? fmtTime(created.expires) : "never")),
    });
    location.hash = `#/keys/${seg(created.hash)}`;
  } catch (err) {
    status.className = "validation bad";
    status.textContent = err.message;
    if (err instanceof ApiError && err.status === 400) editor.showError(err.message);
  } finally {
    save.disabled = false;
  }
}
