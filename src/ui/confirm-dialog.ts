import { h } from "./dom.js";

/** Shortest reason the server takes for a bypass or a break-glass (characters after trimming). */
export const REASON_MIN = 10;

export interface ConfirmOptions {
  readonly title: string;
  /** What confirming does, in one or two sentences. */
  readonly explanation: string;
  readonly confirmLabel: string;
  /** Runs with the trimmed reason; its error message is shown in the dialog, which then stays open. */
  readonly onConfirm: (reason: string) => Promise<void>;
}

/**
 * A native modal <dialog> (focus stays inside, Escape closes it) asking for
 * a written reason of at least REASON_MIN characters before a loud action.
 */
export function confirmWithReason(o: ConfirmOptions): void {
  const id = `reason-${Math.random().toString(36).slice(2)}`;
  const reason = h("textarea", { id, name: "reason", rows: 3, required: true, minlength: REASON_MIN, maxlength: 2000 });
  const error = h("p", { class: "error", role: "alert" });
  const confirm = h("button", { type: "submit", class: "danger" }, o.confirmLabel);
  const cancel = h("button", { type: "button" }, "Cancel");
  const form = h(
    "form",
    { method: "dialog", novalidate: true },
    h("h2", {}, o.title),
    h("p", {}, o.explanation),
    h("label", { for: id }, `Reason (at least ${REASON_MIN} characters, kept in the history)`),
    reason,
    error,
    h("div", { class: "buttons" }, cancel, confirm),
  );
  const dialog = h("dialog", { "aria-label": o.title }, form);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = reason.value.trim();
    if (text.length < REASON_MIN) {
      error.textContent = `Write a reason of at least ${REASON_MIN} characters (${text.length} so far).`;
      reason.focus();
      return;
    }
    confirm.disabled = true;
    error.textContent = "";
    o.onConfirm(text).then(
      () => dialog.close(),
      (err: unknown) => {
        error.textContent = err instanceof Error ? err.message : String(err);
        confirm.disabled = false;
      },
    );
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  reason.focus();
}
