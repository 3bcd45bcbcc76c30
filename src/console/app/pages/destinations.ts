import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { type Answer, call, everyItem, type Me } from "../api.ts";
import { Banner, errorsOf, type FieldErrors, FormError, ShownOnce } from "../ui.ts";
import {
  bodyOf,
  DestinationFields,
  EMPTY_DRAFT,
  fieldNames,
  Health,
  type HealthView,
  isKind,
  KINDS,
  type Kind,
} from "./destination-form.ts";

export { DestinationPage } from "./destination.ts";

/** A destination of any kind as the list shows it. */
export interface Destination {
  id: string;
  name?: string | null;
  url: string;
  enabled: boolean;
  events: string[];
  disabled_reason: string | null;
  description?: string | null;
  health: HealthView;
}

/** Every destination of one kind. */
function allOf(kind: Kind): Promise<Answer<Destination[]>> {
  return everyItem<Destination>(`/api/integrations/${KINDS[kind].base}`);
}

export function DestinationsPage(props: { me: Me }): VNode {
  const [lists, setLists] = useState<Record<Kind, Destination[]> | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    Promise.all((["webhook", "slack", "email"] as const).map(allOf)).then(([w, s, e]) => {
      const failed = [w, s, e].find((a) => !a?.ok);
      if (failed && !failed.ok) return setError(failed.error.msg);
      if (w?.ok && s?.ok && e?.ok) setLists({ webhook: w.data, slack: s.data, email: e.data });
    });
  }, []);
  const writable = props.me.scope === "admin";
  return html`<h1>Destinations</h1>
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    ${
      writable
        ? html`<p class="actions">
          <a class="button" href="#/destinations/new/webhook">New webhook</a>
          <a class="button" href="#/destinations/new/slack">New Slack destination</a>
          <a class="button" href="#/destinations/new/email">New email destination</a>
        </p>`
        : null
    }
    ${lists === null && !error ? html`<p>Loading…</p>` : null}
    ${
      lists
        ? (["webhook", "slack", "email"] as const).map(
            (kind) => html`<section aria-labelledby=${`h-${kind}`}>
            <h2 id=${`h-${kind}`}>${KINDS[kind].noun} destinations</h2>
            ${
              lists[kind].length === 0
                ? html`<p class="muted">None yet.</p>`
                : html`<table>
                  <thead><tr><th scope="col">Destination</th><th scope="col">Events</th><th scope="col">Health</th></tr></thead>
                  <tbody>
                    ${lists[kind].map(
                      (d) => html`<tr>
                        <td><a href=${`#/destinations/${kind}/${d.id}`}>${d.name || d.url}</a>
                          ${d.name ? html`<div class="muted">${d.url}</div>` : null}</td>
                        <td>${d.events.join(", ")}</td>
                        <td><${Health} d=${d} /></td>
                      </tr>`,
                    )}
                  </tbody>
                </table>`
            }
          </section>`,
          )
        : null
    }`;
}

/** Creates a destination of `kind`; a webhook's signing secret is shown once on success. */
export function NewDestinationPage(props: { me: Me; kind: string }): VNode {
  const kind: Kind = isKind(props.kind) ? props.kind : "webhook";
  const [draft, setDraft] = useState(EMPTY_DRAFT);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [created, setCreated] = useState<{ id: string; secret?: string } | null>(null);
  if (props.me.scope !== "admin") return html`<${Banner} kind="info">This key is read-only.</${Banner}>`;
  const submit = async (e: Event) => {
    e.preventDefault();
    const a = await call<{ id: string; secret?: string }>(
      "POST",
      `/api/integrations/${KINDS[kind].base}`,
      bodyOf(kind, draft, true),
    );
    if (!a.ok) return setErrors(errorsOf(a.error));
    setErrors({});
    setCreated(a.data);
  };
  if (created) {
    return html`<h1>${KINDS[kind].noun} destination created</h1>
      ${created.secret ? html`<${ShownOnce} label="Signing secret" value=${created.secret} />` : null}
      <p><a href=${`#/destinations/${kind}/${created.id}`}>Open the destination</a></p>`;
  }
  return html`<h1>New ${KINDS[kind].noun.toLowerCase()} destination</h1>
    <form onSubmit=${submit} novalidate>
      <${FormError} errors=${errors} shown=${fieldNames(kind, draft)} />
      <${DestinationFields} kind=${kind} draft=${draft} errors=${errors} onChange=${setDraft} />
      <button type="submit">Create</button>
    </form>`;
}
