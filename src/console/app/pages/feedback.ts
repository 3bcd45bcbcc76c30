import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, everyItem, type Me } from "../api.ts";
import { Banner, errorsOf, Field, type FieldErrors, FormError, ShownOnce, When } from "../ui.ts";

interface Integration {
  id: string;
  display_name: string;
  description: string | null;
  data_mutability: boolean;
  created_at: string;
}

/** Feedback integrations: create one (its ingestion key shown once), rotate its key, data mutability. */
export function FeedbackPage(props: { me: Me }): VNode {
  const [list, setList] = useState<Integration[] | null>(null);
  const [name, setName] = useState("");
  const [mutable, setMutable] = useState(false);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [notice, setNotice] = useState<VNode | null>(null);
  const writable = props.me.scope === "admin";
  const load = () =>
    everyItem<Integration>("/api/integrations/feedback").then((a) =>
      a.ok ? setList(a.data) : setNotice(html`<${Banner} kind="error">${a.error.msg}</${Banner}>`),
    );
  useEffect(() => {
    load();
  }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    const a = await call<Integration & { api_key: string }>("POST", "/api/integrations/feedback", {
      display_name: name,
      data_mutability: mutable,
    });
    if (!a.ok) return setErrors(errorsOf(a.error));
    setErrors({});
    setName("");
    setNotice(
      html`<${ShownOnce} label=${`Ingestion key of ${a.data.display_name}`} value=${a.data.api_key} />`,
    );
    load();
  };
  const rotate = async (i: Integration) => {
    if (!confirm(`Rotate the key of ${i.display_name}? The old key stops working at once.`)) return;
    const a = await call<{ api_key: string }>("POST", `/api/integrations/feedback/${i.id}/rotate-key`, {});
    setNotice(
      a.ok
        ? html`<${ShownOnce} label=${`New ingestion key of ${i.display_name}`} value=${a.data.api_key} />`
        : html`<${Banner} kind="error">${a.error.msg}</${Banner}>`,
    );
  };
  const toggleMutability = async (i: Integration) => {
    const a = await call("PATCH", `/api/integrations/feedback/${i.id}`, {
      data_mutability: !i.data_mutability,
    });
    if (!a.ok) setNotice(html`<${Banner} kind="error">${a.error.msg}</${Banner}>`);
    load();
  };
  type A = { id: string; describedBy?: string; invalid: boolean };
  return html`<h1>Feedback integrations</h1>
    ${notice}
    ${
      list === null
        ? html`<p>Loading…</p>`
        : list.length === 0
          ? html`<p class="muted">None yet.</p>`
          : html`<table>
            <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Data mutability</th>
              <th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
            <tbody>${list.map(
              (i) => html`<tr>
                <td>${i.display_name}</td>
                <td><code>${i.id}</code></td>
                <td><label class="check"><input type="checkbox" checked=${i.data_mutability} disabled=${!writable}
                  onChange=${() => toggleMutability(i)} /> replace resent records</label></td>
                <td><${When} at=${i.created_at} /></td>
                <td>${writable ? html`<button type="button" onClick=${() => rotate(i)} aria-label=${`Rotate the key of ${i.display_name}`}>Rotate key</button>` : null}</td>
              </tr>`,
            )}</tbody>
          </table>`
    }
    ${
      writable
        ? html`<h2>New feedback integration</h2>
          <form onSubmit=${create} novalidate>
            <${FormError} errors=${errors} shown=${["display_name", "data_mutability"]} />
            <${Field} label="Display name" name="display_name" errors=${errors} hint="e.g. ZendeskSupport"
              render=${(
                a: A,
              ) => html`<input id=${a.id} value=${name} aria-describedby=${a.describedBy} aria-invalid=${a.invalid}
                onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} />`} />
            <label class="check"><input type="checkbox" checked=${mutable}
              onChange=${(e: Event) => setMutable((e.target as HTMLInputElement).checked)} /> Data mutability: a resent record replaces the stored one and is evaluated again</label>
            <button type="submit">Create integration</button>
          </form>`
        : null
    }`;
}
