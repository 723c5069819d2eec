// The one path by which values reach the page: elements are created with createElement and
// every value becomes a Text node or an attribute set through setAttribute. Nothing here parses
// HTML, so a policy, model name, branch or memory file holding markup is shown, never run.

const SVG_NS = "http://www.w3.org/2000/svg";
const FORBIDDEN_ATTR = /^(on|style$|srcdoc$)/i;

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (name === "value" && "value" in el) {
      el.value = String(value);
    } else if (FORBIDDEN_ATTR.test(name)) {
      throw new Error(`attribute ${name} is not set from code`);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** An HTML element: h("td", {class: "num"}, value). Strings become text, never markup. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/** An SVG element, built the same way. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return append(el, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

const INTEGER = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function fmtInt(n) {
  return typeof n === "number" && Number.isFinite(n) ? INTEGER.format(n) : "–";
}

const USD = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const USD_SMALL = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumSignificantDigits: 2 });

/** Dollars: cents for most amounts, two significant digits below a cent ($0.00042). */
export function fmtUsd(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  return n !== 0 && Math.abs(n) < 0.01 ? USD_SMALL.format(n) : USD.format(n);
}

export function fmtTime(text) {
  if (!text) return "–";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return String(text);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function shortHash(hash) {
  return typeof hash === "string" ? hash.slice(0, 12) : "–";
}

/** A table from column specs [{label, cell(row) -> node|string, num?}] and rows. */
export function table(columns, rows, { caption, empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      null,
      caption ? h("caption", null, caption) : null,
      h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h(
        "tbody",
        null,
        rows.map((row) => h("tr", null, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(row))))),
      ),
    ),
  );
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", null, title), children);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error));
}
