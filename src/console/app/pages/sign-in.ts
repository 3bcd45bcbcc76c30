import { html } from "htm/preact";
import type { VNode } from "preact";
import { useState } from "preact/hooks";
import { call, type Me, rememberKey } from "../api.ts";
import { Banner, Field, type FieldErrors } from "../ui.ts";

/** Asks for an admin API key and checks it; only a key that works is kept. */
export function SignIn(props: { onSignedIn: (me: Me) => void; notice?: string | null }): VNode {
  const [key, setKey] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    const answer = await call<Me>("GET", "/api/keys/current", undefined, key.trim());
    setBusy(false);
    if (!answer.ok) {
      setErrors({
        key:
          answer.status === 401
            ? "That key is not valid, or it was revoked. Use an admin API key (esk_… or esr_…)."
            : answer.error.msg,
      });
      return;
    }
    rememberKey(key.trim());
    props.onSignedIn(answer.data);
  };
  return html`<main class="page narrow">
    <h1>Sign in</h1>
    ${props.notice ? html`<${Banner} kind="error">${props.notice}</${Banner}>` : null}
    <p>Use an API key of your organization. It stays in this browser tab and is forgotten when you sign out or close it.</p>
    <form onSubmit=${submit} novalidate>
      <${Field}
        label="API key"
        name="key"
        errors=${errors}
        render=${(a: { id: string; describedBy?: string; invalid: boolean }) =>
          html`<input id=${a.id} type="password" autocomplete="off" required value=${key}
            aria-describedby=${a.describedBy} aria-invalid=${a.invalid}
            onInput=${(e: Event) => setKey((e.target as HTMLInputElement).value)} />`}
      />
      <button type="submit" disabled=${busy || key.trim() === ""}>Sign in</button>
    </form>
    <p><a href="#/validator">Payload validator</a> (no key needed)</p>
  </main>`;
}
