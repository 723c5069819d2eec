// Modal dialogs built on <dialog> (keyboard: Tab cycles inside, Escape cancels, focus returns
// to where it was): a confirmation, and the one-time display of a new raw token.

import { h } from "./dom.js";

function openDialog(dialog, initialFocus) {
  const previous = document.activeElement;
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (previous instanceof HTMLElement) previous.focus();
  });
  dialog.showModal();
  initialFocus.focus();
}

/** Resolves true when the user confirms; Cancel, Escape or the backdrop resolve false. */
export function confirmDialog({ title, message, confirmLabel = "Delete" }) {
  return new Promise((resolve) => {
    const cancel = h("button", { type: "button", on: { click: () => dialog.close("cancel") } }, "Cancel");
    const ok = h("button", { type: "button", class: "danger solid", on: { click: () => dialog.close("ok") } }, confirmLabel);
    const dialog = h(
      "dialog",
      { "aria-labelledby": "confirm-title", class: "confirm" },
      h("h2", { id: "confirm-title" }, title),
      h("p", null, message),
      h("div", { class: "actions" }, cancel, ok),
    );
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"));
    openDialog(dialog, cancel);
  });
}

async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input.select(); // let the user copy it by hand
    return false;
  }
}

/** Shows a secret once: a read-only field, a Copy button and a note that it is not kept. */
export function secretDialog({ title, secret, details }) {
  return new Promise((resolve) => {
    const field = h("input", { type: "text", readonly: true, value: secret, "aria-label": "New token", class: "mono", id: "new-token" });
    const status = h("p", { class: "validation", role: "status" });
    const copy = h("button", {
      type: "button",
      class: "primary",
      on: {
        click: async () => {
          const copied = await copyText(secret, field);
          status.textContent = copied ? "Copied to the clipboard." : "Copy failed: the token is selected, press Ctrl+C.";
        },
      },
    }, "Copy");
    const close = h("button", { type: "button", on: { click: () => dialog.close() } }, "Close");
    const dialog = h(
      "dialog",
      { "aria-labelledby": "secret-title", class: "secret-dialog" },
      h("h2", { id: "secret-title" }, title),
      h("p", null, "This is the only time the token is shown: store it now. Tokenomics keeps only its hash."),
      h("div", { class: "secret" }, field, copy),
      status,
      details,
      h("div", { class: "actions" }, close),
    );
    dialog.addEventListener("close", () => resolve());
    openDialog(dialog, copy);
  });
}
