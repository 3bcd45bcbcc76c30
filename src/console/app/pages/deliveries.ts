import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, type Me, type Paged } from "../api.ts";
import { Banner, When } from "../ui.ts";
import { isKind, KINDS, type Kind } from "./destination-form.ts";

interface Summary {
  id: string;
  event: string;
  status: "pending" | "held" | "delivered" | "failed";
  attempt_count: number;
  http_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
  next_attempt_at: string | null;
  idempotency_key: string;
}

interface Detail extends Summary {
  payload: unknown;
  request: { method: string; url: string; headers: Record<string, string>; signed_at: string } | null;
  attempts: Array<{
    attempt_number: number;
    started_at: string;
    duration_ms: number | null;
    http_status: number | null;
    error_kind: string | null;
    error_message: string | null;
    response_excerpt: string | null;
  }>;
}

const STATUSES = ["", "pending", "held", "delivered", "failed"] as const;

/** `datetime-local` value (the reader's time) → ISO, or undefined when empty. */
function isoOf(local: string): string | undefined {
  return local ? new Date(local).toISOString() : undefined;
}

function Status(props: { s: Summary }): VNode {
  const cls = { delivered: "ok", failed: "bad", held: "warn", pending: "" }[props.s.status];
  return html`<span class=${`badge ${cls}`}>${props.s.status}</span>`;
}

/**
 * A destination's deliveries, newest first, filtered by status and time, paged by cursor: the page after
 * is the answer's `next_cursor`, so any depth opens as fast as the first page; the cursors seen are kept
 * for going back.
 */
export function DeliveriesPage(props: { me: Me; kind: string; id: string }): VNode {
  const kind: Kind = isKind(props.kind) ? props.kind : "webhook";
  const base = `/api/integrations/${KINDS[kind].base}/${encodeURIComponent(props.id)}`;
  const [status, setStatus] = useState("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const [page, setPage] = useState<Paged<Summary> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<VNode | null>(null);
  const [since, setSince] = useState("");
  const [until, setUntil] = useState("");
  const cursor = cursors.at(-1) ?? null;

  const query = () => {
    const q = new URLSearchParams({ per_page: "20" });
    if (status) q.set("status", status);
    const f = isoOf(from);
    const t = isoOf(to);
    if (f) q.set("from", f);
    if (t) q.set("to", t);
    if (cursor) q.set("cursor", cursor);
    return q.toString();
  };
  useEffect(() => {
    const started = performance.now();
    call<Paged<Summary>>("GET", `${base}/deliveries?${query()}`).then((a) => {
      if (!a.ok) return setError(a.error.msg);
      setError(null);
      setPage(a.data);
      document.body.dataset.deliveriesMs = String(Math.round(performance.now() - started));
    });
  }, [base, status, from, to, cursor]);

  const filter = (set: (v: string) => void) => (e: Event) => {
    set((e.target as HTMLInputElement).value);
    setCursors([null]);
  };
  const recover = async (e: Event) => {
    e.preventDefault();
    const a = await call<{ queued: number; more: boolean }>("POST", `${base}/recover`, {
      since: isoOf(since),
      ...(until ? { until: isoOf(until) } : {}),
    });
    setNotice(
      a.ok
        ? html`<${Banner} kind="ok">Queued again: ${a.data.queued}${a.data.more ? " (more follow)" : ""}.</${Banner}>`
        : html`<${Banner} kind="error">${a.error.msg}</${Banner}>`,
    );
  };

  return html`<h1>Deliveries</h1>
    <p><a href=${`#/destinations/${kind}/${props.id}`}>← Back to the destination</a></p>
    <form class="filters" onSubmit=${(e: Event) => e.preventDefault()}>
      <label for="status">Status</label>
      <select id="status" value=${status} onChange=${filter(setStatus)}>
        ${STATUSES.map((s) => html`<option value=${s}>${s || "any"}</option>`)}
      </select>
      <label for="from">From</label>
      <input id="from" type="datetime-local" value=${from} onChange=${filter(setFrom)} />
      <label for="to">To</label>
      <input id="to" type="datetime-local" value=${to} onChange=${filter(setTo)} />
    </form>
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    ${
      page
        ? html`<p class="muted" data-testid="total">${page.total_estimated ? "about " : ""}${page.total} deliveries</p>
          <table>
            <thead><tr><th scope="col">Delivery</th><th scope="col">Event</th><th scope="col">Status</th>
              <th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">Created</th></tr></thead>
            <tbody>
              ${page.data.map(
                (d) => html`<tr>
                  <td><a href=${`#/destinations/${kind}/${props.id}/deliveries/${d.id}`}>${d.id}</a></td>
                  <td>${d.event}</td>
                  <td><${Status} s=${d} /></td>
                  <td>${d.attempt_count}</td>
                  <td>${d.http_status ?? d.last_error ?? "—"}</td>
                  <td><${When} at=${d.created_at} /></td>
                </tr>`,
              )}
            </tbody>
          </table>
          <p class="actions">
            <button type="button" disabled=${cursors.length === 1} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
            <button type="button" disabled=${!page.next_cursor} onClick=${() => setCursors([...cursors, page.next_cursor])}>Older</button>
          </p>`
        : html`<p>Loading…</p>`
    }
    ${
      props.me.scope === "admin"
        ? html`<section aria-labelledby="h-recover"><h2 id="h-recover">Recover a time window</h2>
          <p>Queue again every delivery that failed in the window, for after an outage of the receiver.</p>
          ${notice}
          <form class="inline" onSubmit=${recover}>
            <label for="since">Since</label>
            <input id="since" type="datetime-local" required value=${since} onInput=${(e: Event) => setSince((e.target as HTMLInputElement).value)} />
            <label for="until">Until</label>
            <input id="until" type="datetime-local" value=${until} onInput=${(e: Event) => setUntil((e.target as HTMLInputElement).value)} />
            <button type="submit">Recover</button>
          </form>
        </section>`
        : null
    }`;
}

/** One delivery: its frozen payload and every attempt; retry. */
export function DeliveryPage(props: { me: Me; kind: string; id: string; deliveryId: string }): VNode {
  const kind: Kind = isKind(props.kind) ? props.kind : "webhook";
  const path = `/api/integrations/${KINDS[kind].base}/${encodeURIComponent(props.id)}/deliveries/${encodeURIComponent(props.deliveryId)}`;
  const [d, setD] = useState<Detail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<VNode | null>(null);
  const load = () => call<Detail>("GET", path).then((a) => (a.ok ? setD(a.data) : setError(a.error.msg)));
  useEffect(() => {
    load();
  }, [path]);
  if (error) return html`<${Banner} kind="error">${error}</${Banner}>`;
  if (!d) return html`<p>Loading…</p>`;
  const retry = async () => {
    const a = await call<{ status: string }>("POST", `${path}/retry`, {});
    setNotice(
      a.ok
        ? html`<${Banner} kind="ok">Retry requested (${a.data.status}).</${Banner}>`
        : html`<${Banner} kind="error">${a.error.msg}</${Banner}>`,
    );
    setTimeout(load, 1000);
  };
  return html`<h1>Delivery <code>${d.id}</code></h1>
    <p><a href=${`#/destinations/${kind}/${props.id}/deliveries`}>← All deliveries</a></p>
    <dl class="facts">
      <dt>Status</dt><dd><${Status} s=${d} /></dd>
      <dt>Event</dt><dd>${d.event}</dd>
      <dt>Idempotency-Key</dt><dd><code>${d.idempotency_key}</code></dd>
      <dt>Created</dt><dd><${When} at=${d.created_at} /></dd>
      <dt>Delivered</dt><dd><${When} at=${d.delivered_at} /></dd>
      <dt>Next attempt</dt><dd><${When} at=${d.next_attempt_at} /></dd>
    </dl>
    ${notice}
    ${props.me.scope === "admin" ? html`<p><button type="button" onClick=${retry}>Retry now</button></p>` : null}
    <h2>Attempts</h2>
    ${
      d.attempts.length === 0
        ? html`<p class="muted">No attempt yet.</p>`
        : html`<table>
          <thead><tr><th scope="col">#</th><th scope="col">Started</th><th scope="col">Duration</th>
            <th scope="col">Answer</th><th scope="col">Response</th></tr></thead>
          <tbody>
            ${d.attempts.map(
              (a) => html`<tr data-testid="attempt">
                <td>${a.attempt_number}</td>
                <td><${When} at=${a.started_at} /></td>
                <td>${a.duration_ms === null ? "—" : `${a.duration_ms} ms`}</td>
                <td>${a.http_status ?? `${a.error_kind}: ${a.error_message}`}</td>
                <td><code class="excerpt">${a.response_excerpt ?? ""}</code></td>
              </tr>`,
            )}
          </tbody>
        </table>`
    }
    ${
      d.request
        ? html`<h2>Request</h2>
          <p><code>${d.request.method} ${d.request.url}</code></p>
          <p class="muted">The credential is masked; the signature is the one for <${When} at=${d.request.signed_at} />,
            with the destination's signing secrets as they are now.</p>
          <table data-testid="request-headers">
            <thead><tr><th scope="col">Header</th><th scope="col">Value</th></tr></thead>
            <tbody>${Object.entries(d.request.headers).map(
              ([k, v]) =>
                html`<tr><th scope="row"><code>${k}</code></th><td><code class="excerpt">${v}</code></td></tr>`,
            )}</tbody>
          </table>`
        : null
    }
    <h2>Payload</h2>
    <pre class="payload">${JSON.stringify(d.payload, null, 2)}</pre>`;
}
