import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, everyItem, type Me } from "../api.ts";
import {
  Banner,
  errorFor,
  errorsOf,
  Field,
  type FieldErrors,
  FormError,
  flashNext,
  ShownOnce,
  When,
} from "../ui.ts";
import { bodyOf, DestinationFields, EMPTY_DRAFT, fieldNames } from "./destination-form.ts";

const LEVELS = ["low", "medium", "high", "extreme"] as const;
const TYPES = ["REVIEW", "SURVEY", "CONVERSATION", "FORUM_CONVERSATION_THREAD", "AUDIO_RECORDING"] as const;

interface Automation {
  id: string;
  name: string;
  active: boolean;
  filter: { integration_ids?: string[]; types?: string[]; metadata?: unknown[] };
  trigger: {
    min_escalation_level: string;
    min_emotional_intensity_level?: string;
    require_sentiment_degraded?: boolean;
  };
  destination_ids: string[];
  last_fired_at?: string | null;
}

interface Target {
  id: string;
  label: string;
}

/** Every destination of every kind and every feedback integration, for the form's choices. */
async function choices(): Promise<{ destinations: Target[]; integrations: Target[] }> {
  const get = async (path: string) => {
    const a = await everyItem<{ id: string; name?: string | null; url?: string; display_name?: string }>(
      path,
    );
    return a.ok ? a.data : [];
  };
  const [w, s, e, f] = await Promise.all([
    get("/api/integrations/webhooks"),
    get("/api/integrations/slack"),
    get("/api/integrations/email"),
    get("/api/integrations/feedback"),
  ]);
  const label = (x: { id: string; name?: string | null; url?: string }) => `${x.name || x.url} (${x.id})`;
  return {
    destinations: [...w, ...s, ...e].map((x) => ({ id: x.id, label: label(x) })),
    integrations: f.map((x) => ({ id: x.id, label: `${x.display_name} (${x.id})` })),
  };
}

function summary(a: Automation): string {
  const parts = [
    a.filter.types ? a.filter.types.join(", ") : "every type",
    a.filter.integration_ids ? `${a.filter.integration_ids.length} integration(s)` : "every integration",
    a.filter.metadata?.length ? `${a.filter.metadata.length} metadata condition(s)` : "",
  ];
  return `${parts.filter(Boolean).join(" · ")}; fires at ${a.trigger.min_escalation_level} or above`;
}

/** The list, or one automation's form (`id` = `new` to create one). */
export function AutomationsPage(props: { me: Me; id?: string }): VNode {
  return props.id
    ? html`<${AutomationForm} me=${props.me} id=${props.id} />`
    : html`<${AutomationList} me=${props.me} />`;
}

function AutomationList(props: { me: Me }): VNode {
  const [list, setList] = useState<Automation[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    everyItem<Automation>("/api/automations").then((a) => (a.ok ? setList(a.data) : setError(a.error.msg)));
  }, []);
  return html`<h1>Automations</h1>
    ${props.me.scope === "admin" ? html`<p><a class="button" href="#/automations/new">New automation</a></p>` : null}
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    ${
      list === null
        ? html`<p>Loading…</p>`
        : list.length === 0
          ? html`<p class="muted">None yet.</p>`
          : html`<table>
            <thead><tr><th scope="col">Name</th><th scope="col">Active</th><th scope="col">Watches</th>
              <th scope="col">Destinations</th><th scope="col">Last fired</th></tr></thead>
            <tbody>${list.map(
              (a) => html`<tr>
                <td><a href=${`#/automations/${a.id}`}>${a.name}</a></td>
                <td>${a.active ? html`<span class="badge ok">active</span>` : html`<span class="badge">paused</span>`}</td>
                <td>${summary(a)}</td>
                <td>${a.destination_ids.length}</td>
                <td data-testid="last-fired">${a.last_fired_at ? html`<${When} at=${a.last_fired_at} />` : "never"}</td>
              </tr>`,
            )}</tbody>
          </table>`
    }`;
}

interface Draft {
  name: string;
  active: boolean;
  types: string[];
  integrations: string[];
  metadata: string;
  minLevel: string;
  minIntensity: string;
  degraded: boolean;
  destinations: string[];
}

function draftOf(a: Automation | null): Draft {
  return {
    name: a?.name ?? "",
    active: a?.active ?? true,
    types: a?.filter.types ?? [],
    integrations: a?.filter.integration_ids ?? [],
    metadata: a?.filter.metadata ? JSON.stringify(a.filter.metadata, null, 2) : "",
    minLevel: a?.trigger.min_escalation_level ?? "high",
    minIntensity: a?.trigger.min_emotional_intensity_level ?? "",
    degraded: a?.trigger.require_sentiment_degraded ?? false,
    destinations: a?.destination_ids ?? [],
  };
}

/** The request body, or a field error when the metadata conditions are not JSON. */
function bodyOfDraft(d: Draft): { body: Record<string, unknown> } | { errors: FieldErrors } {
  let metadata: unknown;
  if (d.metadata.trim() !== "") {
    try {
      metadata = JSON.parse(d.metadata);
    } catch {
      return { errors: { "filter.metadata": "filter.metadata: must be a JSON list of conditions" } };
    }
  }
  const filter: Record<string, unknown> = {};
  if (d.types.length) filter.types = d.types;
  if (d.integrations.length) filter.integration_ids = d.integrations;
  if (metadata !== undefined) filter.metadata = metadata;
  const trigger: Record<string, unknown> = { min_escalation_level: d.minLevel };
  if (d.minIntensity) trigger.min_emotional_intensity_level = d.minIntensity;
  if (d.degraded) trigger.require_sentiment_degraded = true;
  return { body: { name: d.name, active: d.active, filter, trigger, destination_ids: d.destinations } };
}

function Checks(props: {
  legend: string;
  name: string;
  options: Target[];
  chosen: string[];
  errors: FieldErrors;
  onChange: (chosen: string[]) => void;
}): VNode {
  const error = errorFor(props.errors, props.name);
  const toggle = (id: string) => (e: Event) => {
    const on = (e.target as HTMLInputElement).checked;
    props.onChange(on ? [...props.chosen, id] : props.chosen.filter((x) => x !== id));
  };
  return html`<fieldset class="checks" aria-describedby=${error ? `${props.name}-error` : undefined}>
    <legend>${props.legend}</legend>
    ${props.options.length === 0 ? html`<p class="muted">None yet.</p>` : null}
    ${props.options.map(
      (o) => html`<label class="check"><input type="checkbox" checked=${props.chosen.includes(o.id)}
        onChange=${toggle(o.id)} /> ${o.label}</label>`,
    )}
    ${error ? html`<p class="error" id=${`${props.name}-error`} role="alert">${error}</p>` : null}
  </fieldset>`;
}

/** Seed 001's flow: add a webhook from inside the automation, and choose it there. */
function AddWebhook(props: { onAdded: (t: Target, secret: string) => void }): VNode {
  const [open, setOpen] = useState(false);
  const [draft, setDraft] = useState(EMPTY_DRAFT);
  const [errors, setErrors] = useState<FieldErrors>({});
  if (!open) return html`<p><button type="button" onClick=${() => setOpen(true)}>Add webhook</button></p>`;
  const add = async () => {
    const a = await call<{ id: string; url: string; secret: string }>(
      "POST",
      "/api/integrations/webhooks",
      bodyOf("webhook", draft, true),
    );
    if (!a.ok) return setErrors(errorsOf(a.error));
    props.onAdded({ id: a.data.id, label: `${a.data.url} (${a.data.id})` }, a.data.secret);
    setOpen(false);
    setDraft(EMPTY_DRAFT);
    setErrors({});
  };
  // Its fields sit inside the automation's form: Enter adds the webhook instead of saving the automation.
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Enter" && (e.target as HTMLElement).tagName === "INPUT") {
      e.preventDefault();
      add();
    }
  };
  return html`<fieldset class="nested" onKeyDown=${onKeyDown}><legend>New webhook</legend>
    <${FormError} errors=${errors} shown=${fieldNames("webhook", draft)} />
    <${DestinationFields} kind="webhook" draft=${draft} errors=${errors} onChange=${setDraft} />
    <button type="button" onClick=${add}>Add this webhook</button>
    <button type="button" onClick=${() => setOpen(false)}>Cancel</button>
  </fieldset>`;
}

function AutomationForm(props: { me: Me; id: string }): VNode {
  const creating = props.id === "new";
  const [draft, setDraft] = useState<Draft | null>(creating ? draftOf(null) : null);
  const [options, setOptions] = useState<{ destinations: Target[]; integrations: Target[] }>({
    destinations: [],
    integrations: [],
  });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [notice, setNotice] = useState<VNode | null>(null);
  useEffect(() => {
    choices().then(setOptions);
    if (!creating)
      call<Automation>("GET", `/api/automations/${encodeURIComponent(props.id)}`).then((a) =>
        a.ok
          ? setDraft(draftOf(a.data))
          : setNotice(html`<${Banner} kind="error">${a.error.msg}</${Banner}>`),
      );
  }, [props.id]);
  if (!draft) return notice ?? html`<p>Loading…</p>`;
  const set = (patch: Partial<Draft>) => setDraft({ ...draft, ...patch });
  const submit = async (e: Event) => {
    e.preventDefault();
    const made = bodyOfDraft(draft);
    if ("errors" in made) return setErrors(made.errors);
    const a = creating
      ? await call<Automation>("POST", "/api/automations", made.body)
      : await call<Automation>("PATCH", `/api/automations/${encodeURIComponent(props.id)}`, made.body);
    if (!a.ok) return setErrors(errorsOf(a.error));
    setErrors({});
    if (!creating) return setNotice(html`<${Banner} kind="ok">Saved.</${Banner}>`);
    flashNext("Automation created.");
    location.hash = `#/automations/${a.data.id}`;
  };
  const remove = async () => {
    if (!confirm("Delete this automation?")) return;
    const a = await call("DELETE", `/api/automations/${encodeURIComponent(props.id)}`);
    if (a.ok) location.hash = "#/automations";
  };
  type A = { id: string; describedBy?: string; invalid: boolean };
  const select =
    (value: string, onChange: (v: string) => void, values: readonly string[], blank?: string) => (a: A) =>
      html`<select id=${a.id} value=${value} aria-describedby=${a.describedBy}
      onChange=${(e: Event) => onChange((e.target as HTMLSelectElement).value)}>
      ${blank !== undefined ? html`<option value="">${blank}</option>` : null}
      ${values.map((v) => html`<option value=${v}>${v}</option>`)}
    </select>`;
  const shown = [
    "name",
    "filter.types",
    "filter.integration_ids",
    "filter.metadata",
    "trigger.min_escalation_level",
    "trigger.min_emotional_intensity_level",
    "destination_ids",
  ];
  return html`<h1>${creating ? "New automation" : draft.name}</h1>
    <p><a href="#/automations">← All automations</a></p>
    ${notice}
    <form onSubmit=${submit} novalidate>
      <fieldset disabled=${props.me.scope !== "admin"}>
        <${FormError} errors=${errors} shown=${shown} />
        <${Field} label="Name" name="name" errors=${errors} render=${(a: A) =>
          html`<input id=${a.id} value=${draft.name} aria-describedby=${a.describedBy} aria-invalid=${a.invalid}
            onInput=${(e: Event) => set({ name: (e.target as HTMLInputElement).value })} />`} />
        <label class="check"><input type="checkbox" checked=${draft.active}
          onChange=${(e: Event) => set({ active: (e.target as HTMLInputElement).checked })} /> Active</label>
        <${Checks} legend="Record types (none: every type)" name="filter.types" errors=${errors}
          options=${TYPES.map((t) => ({ id: t, label: t }))} chosen=${draft.types} onChange=${(types: string[]) => set({ types })} />
        <${Checks} legend="Feedback integrations (none: every one)" name="filter.integration_ids" errors=${errors}
          options=${options.integrations} chosen=${draft.integrations}
          onChange=${(integrations: string[]) => set({ integrations })} />
        <${Field} label="Metadata conditions (JSON)" name="filter.metadata" errors=${errors}
          hint='For example [{"field": "plan", "op": "eq", "value": "enterprise"}]; all must hold.'
          render=${(a: A) => html`<textarea id=${a.id} rows="3" aria-describedby=${a.describedBy}
            onInput=${(e: Event) => set({ metadata: (e.target as HTMLTextAreaElement).value })}>${draft.metadata}</textarea>`} />
        <${Field} label="Fire at escalation level" name="trigger.min_escalation_level" errors=${errors}
          render=${select(draft.minLevel, (minLevel) => set({ minLevel }), LEVELS)} />
        <${Field} label="Minimum emotional intensity" name="trigger.min_emotional_intensity_level" errors=${errors}
          render=${select(draft.minIntensity, (minIntensity) => set({ minIntensity }), LEVELS, "any")} />
        <label class="check"><input type="checkbox" checked=${draft.degraded}
          onChange=${(e: Event) => set({ degraded: (e.target as HTMLInputElement).checked })} /> Only when sentiment degraded</label>
        <${Checks} legend="Destinations" name="destination_ids" errors=${errors} options=${options.destinations}
          chosen=${draft.destinations} onChange=${(destinations: string[]) => set({ destinations })} />
        <${AddWebhook} onAdded=${(t: Target, secret: string) => {
          setOptions({ ...options, destinations: [...options.destinations, t] });
          set({ destinations: [...draft.destinations, t.id] });
          setNotice(html`<${ShownOnce} label=${`Signing secret of ${t.id}`} value=${secret} />`);
        }} />
        <button type="submit">${creating ? "Create automation" : "Save changes"}</button>
      </fieldset>
    </form>
    ${
      !creating && props.me.scope === "admin"
        ? html`<p><button type="button" class="danger" onClick=${remove}>Delete automation</button></p>`
        : null
    }`;
}
