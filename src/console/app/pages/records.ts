import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call } from "../api.ts";
import { Banner, When } from "../ui.ts";

interface RecordView {
  id: string;
  external_id: string;
  integration_id: string;
  type: string;
  created_at: string;
  received_at: string;
  version: number;
  content: unknown;
  analysis: {
    analyzer: string;
    escalation_level: string;
    emotional_intensity_level: string;
    sentiment_shift: string | null;
    sentiment: number;
    driver: { text: string; message_index: number | null } | null;
    cues: string[];
    reason: string | null;
  } | null;
  automations: Array<{
    automation_id: string;
    name: string;
    active: boolean;
    fired: boolean;
    reason: string;
  }>;
}

/** Finds a record by id: its analysis with the cues and the driving message, and each automation's verdict. */
export function RecordsPage(props: { id?: string }): VNode {
  const [query, setQuery] = useState(props.id ?? "");
  const [found, setFound] = useState<RecordView | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!props.id) return;
    call<RecordView>("GET", `/api/records/${encodeURIComponent(props.id)}`).then((a) => {
      if (a.ok) {
        setFound(a.data);
        setError(null);
      } else {
        setFound(null);
        setError(a.status === 404 ? `No record ${props.id} in this organization.` : a.error.msg);
      }
    });
  }, [props.id]);
  const find = (e: Event) => {
    e.preventDefault();
    location.hash = `#/records/${encodeURIComponent(query.trim())}`;
  };
  const a = found?.analysis;
  return html`<h1>Records</h1>
    <form class="inline" onSubmit=${find} role="search">
      <label for="record-id">Record id</label>
      <input id="record-id" value=${query} placeholder="rec_…" onInput=${(e: Event) => setQuery((e.target as HTMLInputElement).value)} />
      <button type="submit">Find</button>
    </form>
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    ${
      found
        ? html`<h2>${found.type} <code>${found.id}</code></h2>
          <dl class="facts">
            <dt>Sender's id</dt><dd>${found.external_id}</dd>
            <dt>Integration</dt><dd><code>${found.integration_id}</code></dd>
            <dt>Feedback time</dt><dd><${When} at=${found.created_at} /></dd>
            <dt>Received</dt><dd><${When} at=${found.received_at} /></dd>
            <dt>Version</dt><dd>${found.version}</dd>
          </dl>
          <h2>Analysis</h2>
          ${
            a
              ? html`<dl class="facts" data-testid="analysis">
                <dt>Escalation</dt><dd>${a.escalation_level}</dd>
                <dt>Emotional intensity</dt><dd>${a.emotional_intensity_level}</dd>
                <dt>Sentiment shift</dt><dd>${a.sentiment_shift ?? "—"}</dd>
                <dt>Sentiment</dt><dd>${a.sentiment.toFixed(2)}</dd>
                <dt>Analyzer</dt><dd>${a.analyzer}</dd>
                ${a.reason ? html`<dt>Note</dt><dd>${a.reason}</dd>` : null}
              </dl>
              ${
                a.driver
                  ? html`<h3>Driving message${a.driver.message_index === null ? "" : ` (#${a.driver.message_index + 1})`}</h3>
                    <blockquote data-testid="driver">${a.driver.text}</blockquote>`
                  : null
              }
              <h3>Cues</h3>
              ${a.cues.length ? html`<ul data-testid="cues">${a.cues.map((c) => html`<li>${c}</li>`)}</ul>` : html`<p class="muted">None.</p>`}`
              : html`<p class="muted">Not analysed yet.</p>`
          }
          <h2>Automations</h2>
          <table>
            <thead><tr><th scope="col">Automation</th><th scope="col">Fired</th><th scope="col">Why</th></tr></thead>
            <tbody>${found.automations.map(
              (v) => html`<tr data-testid="verdict">
                <td><a href=${`#/automations/${v.automation_id}`}>${v.name}</a>${v.active ? null : html` <span class="badge">paused</span>`}</td>
                <td>${v.fired ? html`<span class="badge ok">fired</span>` : html`<span class="badge">no</span>`}</td>
                <td>${v.reason}</td>
              </tr>`,
            )}</tbody>
          </table>
          <h2>Content</h2>
          <pre>${JSON.stringify(found.content, null, 2)}</pre>`
        : null
    }`;
}
