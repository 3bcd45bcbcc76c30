import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, type Paged } from "../api.ts";
import { Banner, When } from "../ui.ts";

interface AuditEvent {
  id: string;
  at: string;
  key_id: string | null;
  action: string;
  target_type: string;
  target_id: string;
  changes: { before: unknown; after: unknown };
  reference_id: string | null;
}

/** Every configuration change, newest first, paged by cursor. */
export function AuditLogPage(): VNode {
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [page, setPage] = useState<Paged<AuditEvent> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const cursor = cursors.at(-1) ?? null;
  useEffect(() => {
    call<Paged<AuditEvent>>("GET", `/api/audit-log?per_page=50${cursor ? `&cursor=${cursor}` : ""}`).then(
      (a) => (a.ok ? setPage(a.data) : setError(a.error.msg)),
    );
  }, [cursor]);
  return html`<h1>Audit log</h1>
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    ${
      page === null
        ? html`<p>Loading…</p>`
        : html`<table>
          <thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Target</th>
            <th scope="col">Key</th><th scope="col">Change</th></tr></thead>
          <tbody>${page.data.map(
            (e) => html`<tr data-testid="audit-event">
              <td><${When} at=${e.at} /></td>
              <td>${e.action}</td>
              <td><code>${e.target_id}</code></td>
              <td>${e.key_id ? html`<code>${e.key_id}</code>` : "CLI"}</td>
              <td><details><summary>before / after</summary>
                <pre>${JSON.stringify(e.changes, null, 2)}</pre></details></td>
            </tr>`,
          )}</tbody>
        </table>
        <p class="actions">
          <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
          <button type="button" disabled=${!page.next_cursor} onClick=${() => setCursors([...cursors, page.next_cursor])}>Older</button>
        </p>`
    }`;
}
