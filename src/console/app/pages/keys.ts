import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, everyItem, type Me } from "../api.ts";
import { Banner, errorsOf, Field, type FieldErrors, FormError, ShownOnce, When } from "../ui.ts";

interface Key {
  id: string;
  name: string;
  scope: "admin" | "read-only";
  created_at: string;
}

/** The organization's API keys: create one with a scope (its token shown once), revoke. */
export function KeysPage(props: { me: Me }): VNode {
  const [keys, setKeys] = useState<Key[] | null>(null);
  const [name, setName] = useState("");
  const [scope, setScope] = useState<"admin" | "read-only">("read-only");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [notice, setNotice] = useState<VNode | null>(null);
  const writable = props.me.scope === "admin";
  const load = () => everyItem<Key>("/api/keys").then((a) => (a.ok ? setKeys(a.data) : null));
  useEffect(() => {
    load();
  }, []);
  const create = async (e: Event) => {
    e.preventDefault();
    const a = await call<Key & { api_key: string }>("POST", "/api/keys", {
      ...(name ? { name } : {}),
      scope,
    });
    if (!a.ok) return setErrors(errorsOf(a.error));
    setErrors({});
    setName("");
    setNotice(
      html`<${ShownOnce} label=${`Token of ${a.data.name} (${a.data.scope})`} value=${a.data.api_key} />`,
    );
    load();
  };
  const revoke = async (k: Key) => {
    if (!confirm(`Revoke ${k.name}? It stops working at once.`)) return;
    const a = await call("DELETE", `/api/keys/${encodeURIComponent(k.id)}`);
    setNotice(
      a.ok
        ? html`<${Banner} kind="ok">Revoked ${k.name}.</${Banner}>`
        : html`<${Banner} kind="error">${a.error.msg}</${Banner}>`,
    );
    load();
  };
  type A = { id: string; describedBy?: string; invalid: boolean };
  return html`<h1>API keys</h1>
    ${notice}
    ${
      keys === null
        ? html`<p>Loading…</p>`
        : html`<table>
          <thead><tr><th scope="col">Name</th><th scope="col">Scope</th><th scope="col">Created</th>
            <th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>${keys.map(
            (k) => html`<tr>
              <td>${k.name}${k.id === props.me.id ? html` <span class="badge">this key</span>` : null}</td>
              <td>${k.scope}</td>
              <td><${When} at=${k.created_at} /></td>
              <td>${writable ? html`<button type="button" onClick=${() => revoke(k)} aria-label=${`Revoke ${k.name}`}>Revoke</button>` : null}</td>
            </tr>`,
          )}</tbody>
        </table>`
    }
    ${
      writable
        ? html`<h2>New key</h2>
        <form onSubmit=${create} novalidate>
          <${FormError} errors=${errors} shown=${["name", "scope"]} />
          <${Field} label="Name" name="name" errors=${errors} hint="What it is for, e.g. terraform"
            render=${(a: A) => html`<input id=${a.id} value=${name} aria-describedby=${a.describedBy}
              onInput=${(e: Event) => setName((e.target as HTMLInputElement).value)} />`} />
          <${Field} label="Scope" name="scope" errors=${errors}
            render=${(a: A) => html`<select id=${a.id} value=${scope}
              onChange=${(e: Event) => setScope((e.target as HTMLSelectElement).value as "admin" | "read-only")}>
              <option value="read-only">read-only: reads everything, changes nothing</option>
              <option value="admin">admin: may change anything</option>
            </select>`} />
          <button type="submit">Create key</button>
        </form>`
        : null
    }`;
}
