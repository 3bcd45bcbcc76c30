import { html } from "htm/preact";
import type { VNode } from "preact";
import { Field, type FieldErrors, When } from "../ui.ts";

export type Kind = "webhook" | "slack" | "email";

/** Each kind's API path and its name, as the REST API has them. */
export const KINDS: Record<Kind, { base: string; noun: string }> = {
  webhook: { base: "webhooks", noun: "Webhook" },
  slack: { base: "slack", noun: "Slack" },
  email: { base: "email", noun: "Email" },
};

export function isKind(k: string | undefined): k is Kind {
  return k === "webhook" || k === "slack" || k === "email";
}

/** What the form edits; strings as the inputs hold them. */
export interface DestinationDraft {
  name: string;
  url: string;
  description: string;
  events: string;
  authType: "none" | "bearer" | "api_key" | "custom_header";
  headerName: string;
  credential: string;
  signatureScheme: "standard" | "timestamped-hex";
  to: string;
  cc: string;
}

export const EMPTY_DRAFT: DestinationDraft = {
  name: "",
  url: "",
  description: "",
  events: "*",
  authType: "none",
  headerName: "",
  credential: "",
  signatureScheme: "standard",
  to: "",
  cc: "",
};

const list = (s: string) =>
  s
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);

/**
 * The request body for a create (`creating`) or a PATCH. On a PATCH the credential is sent only when typed:
 * it is write-only, so an empty box means "keep the stored one".
 */
export function bodyOf(kind: Kind, d: DestinationDraft, creating: boolean): Record<string, unknown> {
  const events = list(d.events);
  if (kind === "slack") {
    return {
      ...(d.name ? { name: d.name } : {}),
      ...(d.url || creating ? { webhook_url: d.url } : {}),
      events,
    };
  }
  if (kind === "email") {
    return {
      ...(d.name ? { name: d.name } : {}),
      to: list(d.to),
      ...(d.cc ? { cc: list(d.cc) } : {}),
      events,
    };
  }
  const auth: Record<string, unknown> = { type: d.authType };
  if (d.authType === "custom_header") auth.header_name = d.headerName;
  if (d.authType !== "none" && (d.credential || creating)) auth.credential = d.credential;
  return {
    url: d.url,
    events,
    description: d.description === "" ? null : d.description,
    signature_scheme: d.signatureScheme,
    auth,
  };
}

/** The fields of one kind of destination; `credentialSet` says a credential is stored (shown as "set"). */
export function DestinationFields(props: {
  kind: Kind;
  draft: DestinationDraft;
  errors: FieldErrors;
  onChange: (d: DestinationDraft) => void;
  credentialSet?: boolean;
  editing?: boolean;
}): VNode {
  const { kind, draft, errors } = props;
  const set = (k: keyof DestinationDraft) => (e: Event) =>
    props.onChange({ ...draft, [k]: (e.target as HTMLInputElement).value });
  type A = { id: string; describedBy?: string; invalid: boolean };
  const text =
    (k: keyof DestinationDraft, type = "text", extra: Record<string, unknown> = {}) =>
    (a: A) =>
      html`<input id=${a.id} type=${type} value=${draft[k]} aria-describedby=${a.describedBy} aria-invalid=${a.invalid}
      onInput=${set(k)} ...${extra} />`;
  const events = html`<${Field} label="Events" name="events" errors=${errors}
    hint="* for every event type, or a list such as escalation.alert, destination.failing"
    render=${text("events")} />`;
  if (kind === "slack") {
    return html`<${Field} label="Name" name="name" errors=${errors} render=${text("name")} />
      <${Field} label=${props.editing ? "Slack webhook URL (leave empty to keep it)" : "Slack webhook URL"}
        name="webhook_url" errors=${errors} hint="Write-only: it is never shown again."
        render=${text("url", "password", { autocomplete: "off" })} />
      ${events}`;
  }
  if (kind === "email") {
    return html`<${Field} label="Name" name="name" errors=${errors} render=${text("name")} />
      <${Field} label="To" name="to" errors=${errors} hint="Comma-separated addresses" render=${text("to")} />
      <${Field} label="Cc" name="cc" errors=${errors} render=${text("cc")} />
      ${events}`;
  }
  const credentialLabel = props.credentialSet ? "Credential (set; type to replace it)" : "Credential";
  return html`<${Field} label="URL" name="url" errors=${errors} render=${text("url", "url")} />
    <${Field} label="Description" name="description" errors=${errors} render=${text("description")} />
    ${events}
    <${Field} label="Authentication" name="auth.type" errors=${errors}
      render=${(a: A) => html`<select id=${a.id} value=${draft.authType} aria-describedby=${a.describedBy}
        onChange=${set("authType")}>
        <option value="none">None</option>
        <option value="bearer">Bearer token (Authorization: Bearer …)</option>
        <option value="api_key">API key (X-API-Key)</option>
        <option value="custom_header">Custom header</option>
      </select>`} />
    ${
      draft.authType === "custom_header"
        ? html`<${Field} label="Header name" name="auth.header_name" errors=${errors} render=${text("headerName")} />`
        : null
    }
    ${
      draft.authType !== "none"
        ? html`<${Field} label=${credentialLabel} name="auth.credential" errors=${errors}
          hint="Write-only: it is never shown again." render=${text("credential", "password", { autocomplete: "off" })} />`
        : null
    }
    <${Field} label="Signature scheme" name="signature_scheme" errors=${errors}
      render=${(
        a: A,
      ) => html`<select id=${a.id} value=${draft.signatureScheme} aria-describedby=${a.describedBy}
        onChange=${set("signatureScheme")}>
        <option value="standard">Standard Webhooks (webhook-signature)</option>
        <option value="timestamped-hex">Timestamped hex (t=…,v1=… in webhook-signature)</option>
      </select>`} />`;
}

/** The names of the fields a kind's form shows, for errors that name a field the form lacks. */
export function fieldNames(kind: Kind, draft: DestinationDraft): string[] {
  if (kind === "slack") return ["name", "webhook_url", "events"];
  if (kind === "email") return ["name", "to", "cc", "events"];
  return [
    "url",
    "description",
    "events",
    "auth.type",
    "signature_scheme",
    ...(draft.authType === "custom_header" ? ["auth.header_name"] : []),
    ...(draft.authType !== "none" ? ["auth.credential"] : []),
  ];
}

/** A destination's health as the API shows it. */
export interface HealthView {
  state: "healthy" | "failing" | "disabled";
  failing_since: string | null;
  breaker: string;
}

/** Healthy, failing since when, or disabled with its reason; and the breaker when it is not closed. */
export function Health(props: { d: { health: HealthView; disabled_reason: string | null } }): VNode {
  const { health } = props.d;
  const breaker =
    health.breaker === "closed" ? null : html` <span class="badge bad">breaker ${health.breaker}</span>`;
  if (health.state === "healthy") return html`<span class="badge ok">healthy</span>${breaker}`;
  if (health.state === "failing")
    return html`<span class="badge bad">failing since <${When} at=${health.failing_since} /></span>${breaker}`;
  return html`<span class="badge warn">disabled${props.d.disabled_reason ? `: ${props.d.disabled_reason}` : ""}</span>${breaker}`;
}
