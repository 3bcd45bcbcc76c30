import { html } from "htm/preact";
import type { VNode } from "preact";
import { useState } from "preact/hooks";
import { call } from "../api.ts";
import { Banner } from "../ui.ts";

interface Verdicts {
  valid: boolean;
  batch_issues: Array<{ field: string; msg: string }>;
  records: Array<{
    index: number;
    valid: boolean;
    issues: Array<{ field: string; msg: string }>;
    preview: unknown;
  }>;
  note: string;
  curl: string | null;
}

/** Seed 000's payload validator: paste JSON, see each record's verdict and preview, copy the cURL command. */
export function ValidatorPage(): VNode {
  const [text, setText] = useState("");
  const [result, setResult] = useState<Verdicts | null>(null);
  const [error, setError] = useState<string | null>(null);
  const check = async (e: Event) => {
    e.preventDefault();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      setResult(null);
      return setError(`Not valid JSON: ${(err as Error).message}`);
    }
    const a = await call<Verdicts>("POST", "/webhook/custom/validate", body, null);
    if (!a.ok) {
      setResult(null);
      return setError(a.error.msg);
    }
    setError(null);
    setResult(a.data);
  };
  return html`<h1>Payload validator</h1>
    <p>Paste a request body for <code>POST /webhook/custom/all</code>: nothing is stored, and no key is needed.</p>
    <form onSubmit=${check} novalidate>
      <label for="payload">Payload (JSON)</label>
      <textarea id="payload" rows="12" spellcheck="false"
        onInput=${(e: Event) => setText((e.target as HTMLTextAreaElement).value)}>${text}</textarea>
      <button type="submit">Validate</button>
    </form>
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    ${
      result
        ? html`<section aria-labelledby="h-verdict" aria-live="polite">
          <h2 id="h-verdict">${result.valid ? "Valid: every record would be accepted" : "Not valid: nothing would be stored"}</h2>
          ${result.batch_issues.map((i) => html`<p class="error">${i.msg}</p>`)}
          <ol>${result.records.map(
            (r) => html`<li data-testid="verdict">
              <strong>${r.valid ? "accepted" : "refused"}</strong>
              ${r.issues.length ? html`<ul>${r.issues.map((i) => html`<li class="error">${i.msg}</li>`)}</ul>` : null}
              ${r.preview ? html`<details><summary>How it will be stored</summary><pre>${JSON.stringify(r.preview, null, 2)}</pre></details>` : null}
            </li>`,
          )}</ol>
          <p class="muted">${result.note}</p>
          ${
            result.curl
              ? html`<h3>cURL</h3><pre data-testid="curl">${result.curl}</pre>
                <button type="button" onClick=${() => navigator.clipboard?.writeText(result.curl ?? "")}>Copy cURL command</button>`
              : null
          }
        </section>`
        : null
    }`;
}
