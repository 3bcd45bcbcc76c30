import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, type Me } from "../api.ts";
import { Banner, errorsOf, type FieldErrors, FormError, ShownOnce, When } from "../ui.ts";
import {
  bodyOf,
  type DestinationDraft,
  DestinationFields,
  EMPTY_DRAFT,
  fieldNames,
  Health,
  type HealthView,
  isKind,
  KINDS,
  type Kind,
} from "./destination-form.ts";

interface Shown {
  id: string;
  name?: string | null;
  url: string;
  events: string[];
  enabled: boolean;
  description?: string | null;
  disabled_reason: string | null;
  auth?: { type: DestinationDraft["authType"]; header_name: string | null; credential_set: boolean };
  signature_scheme?: DestinationDraft["signatureScheme"];
  ed25519_public_key?: string | null;
  previous_secret_expires_at?: string | null;
  to?: string[];
  cc?: string[];
  held?: { total: number };
  health: HealthView;
  updated_at: string;
}

function draftOf(d: Shown): DestinationDraft {
  return {
    ...EMPTY_DRAFT,
    name: d.name ?? "",
    url: d.url.startsWith("https://hooks") || d.url.startsWith("mailto:") ? "" : d.url,
    description: d.description ?? "",
    events: d.events.join(", "),
    authType: d.auth?.type ?? "none",
    headerName: d.auth?.header_name ?? "",
    signatureScheme: d.signature_scheme ?? "standard",
    to: (d.to ?? []).join(", "),
    cc: (d.cc ?? []).join(", "),
  };
}

/** One destination: its state, its settings form and what can be done to it. */
export function DestinationPage(props: { me: Me; kind: string; id: string }): VNode {
  const kind: Kind = isKind(props.kind) ? props.kind : "webhook";
  const path = `/api/integrations/${KINDS[kind].base}/${encodeURIComponent(props.id)}`;
  const [d, setD] = useState<Shown | null>(null);
  const [draft, setDraft] = useState(EMPTY_DRAFT);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [notice, setNotice] = useState<VNode | null>(null);
  const [grace, setGrace] = useState("0");
  const [missing, setMissing] = useState<string | null>(null);
  const writable = props.me.scope === "admin";

  const load = async () => {
    const a = await call<Shown>("GET", path);
    if (!a.ok) return setMissing(a.error.msg);
    setD(a.data);
    setDraft({ ...draftOf(a.data), url: kind === "webhook" ? a.data.url : "" });
  };
  useEffect(() => {
    load();
  }, [path]);

  if (missing) return html`<${Banner} kind="error">${missing}</${Banner}>`;
  if (!d) return html`<p>Loading…</p>`;

  const save = async (e: Event) => {
    e.preventDefault();
    const a = await call<Shown>("PATCH", path, bodyOf(kind, draft, false));
    if (!a.ok) return setErrors(errorsOf(a.error));
    setErrors({});
    setNotice(html`<${Banner} kind="ok">Saved.</${Banner}>`);
    await load();
  };
  /** Runs an action, shows what it says (a string is a success message) and reloads the destination. */
  const act = async (run: () => Promise<VNode | string>) => {
    setNotice(null);
    const shown = await run();
    await load();
    setNotice(typeof shown === "string" ? html`<${Banner} kind="ok">${shown}</${Banner}>` : shown);
  };
  const failed = (msg: string) => html`<${Banner} kind="error">${msg}</${Banner}>`;
  const toggle = () =>
    act(async () => {
      const a = await call("PATCH", path, { enabled: !d.enabled });
      return a.ok
        ? d.enabled
          ? "Disabled: deliveries are held."
          : "Enabled: held deliveries go out."
        : failed(a.error.msg);
    });
  const sendTest = () =>
    act(async () => {
      const a = await call<{ delivery_id: string }>("POST", `${path}/test`, { event: "test.webhook" });
      return a.ok
        ? html`<${Banner} kind="ok">Test event queued:
            <a href=${`#/destinations/${kind}/${d.id}/deliveries/${a.data.delivery_id}`}>${a.data.delivery_id}</a></${Banner}>`
        : failed(a.error.msg);
    });
  const rotate = () =>
    act(async () => {
      const a = await call<{ secret: string }>("POST", `${path}/rotate-secret`, {
        grace_period_seconds: Number(grace) || 0,
      });
      return a.ok
        ? html`<${ShownOnce} label="New signing secret" value=${a.data.secret} />`
        : failed(a.error.msg);
    });
  const ed25519 = () =>
    act(async () => {
      const on = Boolean(d.ed25519_public_key);
      const a = await call(on ? "DELETE" : "POST", `${path}/signing-key`, on ? undefined : {});
      return a.ok
        ? d.ed25519_public_key
          ? "Ed25519 signing is off."
          : "Ed25519 signing is on."
        : failed(a.error.msg);
    });
  const remove = async () => {
    if (!confirm("Delete this destination? Nothing more is sent to it.")) return;
    const a = await call("DELETE", path);
    if (a.ok) location.hash = "#/destinations";
    else setNotice(failed(a.error.msg));
  };

  return html`<h1>${d.name || d.url}</h1>
    <p class="muted">${KINDS[kind].noun} destination <code>${d.id}</code> · updated <${When} at=${d.updated_at} /></p>
    <p>
      <span data-testid="state">${d.enabled ? "enabled" : "disabled"}</span> · <${Health} d=${d} />
      ${d.held && d.held.total > 0 ? html` <span class="badge">${d.held.total} held</span>` : null}
    </p>
    ${notice}
    <p class="actions">
      <a class="button" href=${`#/destinations/${kind}/${d.id}/deliveries`}>Deliveries</a>
      ${
        writable
          ? html`<button type="button" onClick=${toggle}>${d.enabled ? "Disable" : "Enable"}</button>
            <button type="button" onClick=${sendTest}>Send test event</button>`
          : null
      }
    </p>
    ${
      kind === "webhook"
        ? html`<section aria-labelledby="h-signing"><h2 id="h-signing">Signing</h2>
          ${d.previous_secret_expires_at ? html`<p>The previous secret signs too until <${When} at=${d.previous_secret_expires_at} />.</p>` : null}
          ${
            writable
              ? html`<div class="inline">
                ${
                  d.signature_scheme === "timestamped-hex"
                    ? html`<span class="muted">This scheme has room for one signature: a rotation takes effect at once.</span>`
                    : html`<label for="grace">Grace period (seconds)</label>
                      <input id="grace" type="number" min="0" max="604800" value=${grace}
                        onInput=${(e: Event) => setGrace((e.target as HTMLInputElement).value)} />`
                }
                <button type="button" onClick=${rotate}>Rotate signing secret</button>
              </div>`
              : null
          }
          <p>Ed25519: ${d.ed25519_public_key ? html`on, public key <code data-testid="public-key">${d.ed25519_public_key}</code>` : "off"}
            ${writable ? html` <button type="button" onClick=${ed25519}>${d.ed25519_public_key ? "Turn Ed25519 off" : "Turn Ed25519 on"}</button>` : null}</p>
        </section>`
        : null
    }
    <section aria-labelledby="h-settings"><h2 id="h-settings">Settings</h2>
      <form onSubmit=${save} novalidate>
        <fieldset disabled=${!writable}>
          <${FormError} errors=${errors} shown=${fieldNames(kind, draft)} />
          <${DestinationFields} kind=${kind} draft=${draft} errors=${errors} onChange=${setDraft}
            credentialSet=${d.auth?.credential_set} editing=${true} />
          <button type="submit">Save changes</button>
        </fieldset>
      </form>
      ${writable ? html`<p><button type="button" class="danger" onClick=${remove}>Delete destination</button></p>` : null}
    </section>`;
}
