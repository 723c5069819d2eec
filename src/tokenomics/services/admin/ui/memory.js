// Memory files: the conversation logs under {dir}/memory, newest first; choosing one shows its
// text as text (a <pre> filled through textContent: markup in a conversation stays markup).

import { api } from "./api.js";
import { fmtInt, fmtTime, h, section } from "./dom.js";

function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

function kib(size) {
  return size < 1024 ? `${fmtInt(size)} B` : `${fmtInt(Math.ceil(size / 1024))} KiB`;
}

export async function render(page) {
  const data = await api.get("/memory/files");
  const files = data.files || [];
  const viewer = h("div", { class: "card", "aria-live": "polite" }, h("p", { class: "muted" }, files.length ? "Choose a file." : "No memory files: memory is off or nothing was recorded yet."));
  const buttons = [];
  const open = async (file, button) => {
    for (const b of buttons) b.removeAttribute("aria-current");
    button.setAttribute("aria-current", "true");
    viewer.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try {
      const content = await api.get(`/memory/files/${encodePath(file.path)}`);
      viewer.replaceChildren(h("h2", { class: "mono" }, content.path));
      if (content.truncated) viewer.append(h("p", { class: "warn-text" }, "Only the first 1 MiB is shown."));
      viewer.append(h("pre", { class: "file", tabindex: "0", "aria-label": `Content of ${content.path}` }, content.content));
    } catch (err) {
      viewer.replaceChildren(h("p", { class: "error", role: "alert" }, err.message));
    }
  };
  const list = h("ul", { class: "file-list" }, files.map((file) => {
    const button = h("button", { type: "button", on: { click: () => open(file, button) } },
      h("span", { class: "mono" }, file.path), h("small", null, `${kib(file.size)} · ${fmtTime(file.mod_time)}`));
    buttons.push(button);
    return h("li", null, button);
  }));
  page.append(
    h("h1", null, "Memory"),
    h("div", { class: "split" }, section(`${fmtInt(data.count ?? files.length)} file${(data.count ?? files.length) === 1 ? "" : "s"}`, list), viewer),
  );
}
