// The policy editor: the JSON text is the policy (fields the quick inputs do not model, such
// as `memory`, are kept as written), a few quick inputs edit common top-level fields in it, and
// every keystroke is checked: JSON syntax here at once (with line and column), the policy
// itself by the server a moment later (the same validation and messages as the CLI).

import { h } from "./dom.js";

const QUICK = [
  { key: "base_key_env", label: "API key env var", type: "text", list: "env-vars", hint: "Variable holding the real upstream key" },
  { key: "default_provider", label: "Default provider", type: "text", list: "provider-names", hint: "e.g. openai, anthropic, mock" },
  { key: "model", label: "Only model", type: "text", hint: "Exact name; empty = any" },
  { key: "max_tokens", label: "Token budget", type: "number", hint: "Lifetime; 0 = unlimited" },
  { key: "max_cost_usd", label: "Cost budget (USD)", type: "number", hint: "Lifetime; 0 = unlimited", step: "0.01" },
];
const SERVER_DELAY_MS = 350;

/** Where a JSON.parse error points, as "line L, column C" when the engine says. */
function syntaxMessage(text, err) {
  const message = String(err.message || err);
  const pos = /position (\d+)/.exec(message);
  const lineCol = /line (\d+) column (\d+)/.exec(message);
  if (lineCol) return `JSON syntax error at line ${lineCol[1]}, column ${lineCol[2]}: ${message}`;
  if (pos) {
    const before = text.slice(0, Number(pos[1])).split("\n");
    return `JSON syntax error at line ${before.length}, column ${before.at(-1).length + 1}: ${message}`;
  }
  return `JSON syntax error: ${message}`;
}

/** Parse the editor text: {policy} or {error}. */
export function parsePolicy(text) {
  if (!text.trim()) return { error: "The policy is empty." };
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { error: syntaxMessage(text, err) };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return { error: "The policy must be a JSON object ({ … })." };
  }
  return { policy: value };
}

function quickValue(field, input) {
  if (field.type !== "number") return input.value.trim() || undefined;
  if (input.value.trim() === "") return undefined;
  const n = Number(input.value);
  return Number.isFinite(n) ? n : input.value;
}

/**
 * Builds the editor into `root`. `validate(text)` resolves to null (valid), an error message,
 * or {note} when the server could not say.
 * Returns {textarea, isValid(), text()}.
 */
export function policyEditor(root, { initial, validate, envVars = [], providers = [] }) {
  const textarea = h("textarea", {
    id: "policy-json", class: "code", spellcheck: "false", autocomplete: "off",
    "aria-describedby": "policy-status", "aria-label": "Policy JSON",
  });
  textarea.value = initial;
  const status = h("p", { id: "policy-status", class: "validation", role: "status", "aria-live": "polite" });
  const inputs = new Map();
  let state = { ok: false, checking: false };
  let timer = null;
  let serial = 0;

  const quickRow = h("div", { class: "fields-row" }, QUICK.map((field) => {
    const id = `quick-${field.key}`;
    const input = h("input", { id, type: field.type, list: field.list, step: field.step, min: field.type === "number" ? "0" : null, autocomplete: "off" });
    inputs.set(field.key, input);
    input.addEventListener("input", () => fromQuick(field, input));
    return h("div", { class: "field" }, h("label", { for: id }, field.label, " ", h("span", { class: "hint" }, field.hint)), input);
  }));

  function show(kind, message) {
    status.className = `validation ${kind}`;
    status.textContent = message;
    textarea.setAttribute("aria-invalid", kind === "bad" ? "true" : "false");
  }

  function fillQuick(policy) {
    for (const field of QUICK) {
      const input = inputs.get(field.key);
      if (document.activeElement === input) continue;
      const value = policy[field.key];
      input.value = value === undefined || value === null ? "" : String(value);
    }
  }

  function fromQuick(field, input) {
    const parsed = parsePolicy(textarea.value);
    if (parsed.error) {
      show("bad", `Fix the JSON first; ${parsed.error}`);
      return;
    }
    const value = quickValue(field, input);
    if (value === undefined) delete parsed.policy[field.key];
    else parsed.policy[field.key] = value;
    textarea.value = JSON.stringify(parsed.policy, null, 2);
    check();
  }

  function check() {
    const parsed = parsePolicy(textarea.value);
    clearTimeout(timer);
    const mine = ++serial;
    if (parsed.error) {
      state = { ok: false, checking: false };
      show("bad", parsed.error);
      return;
    }
    fillQuick(parsed.policy);
    state = { ok: false, checking: true };
    show("", "Checking…");
    timer = setTimeout(async () => {
      const verdict = await validate(textarea.value);
      if (mine !== serial) return;
      state = { ok: verdict === null || typeof verdict === "object", checking: false };
      if (verdict === null) show("ok", "Valid policy.");
      else if (typeof verdict === "object") show("", verdict.note);
      else show("bad", verdict);
    }, SERVER_DELAY_MS);
  }

  textarea.addEventListener("input", check);
  root.append(
    h("datalist", { id: "env-vars" }, envVars.map((name) => h("option", { value: name }))),
    h("datalist", { id: "provider-names" }, providers.map((name) => h("option", { value: name }))),
    quickRow,
    h("div", { class: "field" },
      h("label", { for: "policy-json" }, "Policy JSON ", h("span", { class: "hint" }, "The whole policy; see docs/POLICY.md. Checked as you type.")),
      textarea, status),
  );
  check();
  return {
    textarea,
    text: () => textarea.value,
    isValid: () => state.ok,
    isChecking: () => state.checking,
    showError: (message) => show("bad", message),
  };
}
