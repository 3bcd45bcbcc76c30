import { html } from "htm/preact";
import type { ComponentChildren, VNode } from "preact";
import { useState } from "preact/hooks";
import type { ApiError } from "./api.ts";

/** Errors shown next to the fields they name; `_form` for those that name none. */
export type FieldErrors = Record<string, string>;

/** An API error as per-field messages: the message goes next to the field it names. */
export function errorsOf(error: ApiError): FieldErrors {
  return { [error.field ?? "_form"]: error.msg };
}

/** The error for a field or anything inside it (`filter.metadata` shows one about `filter.metadata[0].op`). */
export function errorFor(errors: FieldErrors, name: string): string | undefined {
  const key = Object.keys(errors).find(
    (k) => k === name || k.startsWith(`${name}.`) || k.startsWith(`${name}[`),
  );
  return key === undefined ? undefined : errors[key];
}

let idCounter = 0;
/** A page-unique id for tying a label and an error message to their control. */
export function uid(prefix: string): string {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * A labelled control with its error message under it, tied with `aria-describedby` so a screen reader reads
 * the message with the field. `render` gets the control's id and described-by id.
 */
export function Field(props: {
  label: string;
  name: string;
  errors: FieldErrors;
  hint?: string;
  render: (a: { id: string; describedBy: string | undefined; invalid: boolean }) => VNode;
}): VNode {
  const id = `f-${props.name.replace(/[^\w-]/g, "-")}`;
  const error = errorFor(props.errors, props.name);
  const describedBy = [error ? `${id}-error` : "", props.hint ? `${id}-hint` : ""].filter(Boolean).join(" ");
  return html`<div class="field">
    <label for=${id}>${props.label}</label>
    ${props.render({ id, describedBy: describedBy || undefined, invalid: Boolean(error) })}
    ${props.hint ? html`<p class="hint" id=${`${id}-hint`}>${props.hint}</p>` : null}
    ${error ? html`<p class="error" id=${`${id}-error`} role="alert">${error}</p>` : null}
  </div>`;
}

/** The form-level error (one that names no field), or the one of a field the form does not show. */
export function FormError(props: { errors: FieldErrors; shown: string[] }): VNode | null {
  const stray = Object.entries(props.errors).filter(
    ([k]) => k === "_form" || !props.shown.some((name) => errorFor({ [k]: "" }, name) !== undefined),
  );
  if (stray.length === 0) return null;
  return html`<div class="banner error" role="alert">${stray.map(([, msg]) => html`<p>${msg}</p>`)}</div>`;
}

export function Banner(props: { kind: "error" | "ok" | "info"; children: ComponentChildren }): VNode {
  return html`<div class=${`banner ${props.kind}`} role=${props.kind === "error" ? "alert" : "status"}>
    ${props.children}
  </div>`;
}

/** A date as the reader's locale shows it, with the exact ISO time on hover. */
export function When(props: { at: string | null }): VNode {
  if (!props.at) return html`<span class="muted">—</span>`;
  return html`<time datetime=${props.at} title=${props.at}>${new Date(props.at).toLocaleString()}</time>`;
}

/** A secret shown once, with a copy button. */
export function ShownOnce(props: { label: string; value: string }): VNode {
  const copy = () => navigator.clipboard?.writeText(props.value);
  return html`<div class="banner ok" role="status">
    <p><strong>${props.label}</strong> (shown once: copy it now)</p>
    <p><code class="secret" data-testid="shown-once">${props.value}</code>
      <button type="button" onClick=${copy}>Copy</button></p>
  </div>`;
}

let flash: string | null = null;

/** A message for the page the console goes to next ("Automation created."), shown there once. */
export function flashNext(message: string): void {
  flash = message;
}

/** Shows the message {@link flashNext} left, once. */
export function Flash(): VNode | null {
  const [message] = useState(() => {
    const m = flash;
    flash = null;
    return m;
  });
  return message ? html`<${Banner} kind="ok">${message}</${Banner}>` : null;
}
