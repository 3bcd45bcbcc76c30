import { html } from "htm/preact";
import { render, type VNode } from "preact";
import { useEffect, useState } from "preact/hooks";
import { call, forgetKey, KEY_REFUSED, type Me, storedKey } from "./api.ts";
import { AuditLogPage } from "./pages/audit-log.ts";
import { AutomationsPage } from "./pages/automations.ts";
import { DeliveriesPage, DeliveryPage } from "./pages/deliveries.ts";
import { DestinationPage, DestinationsPage, NewDestinationPage } from "./pages/destinations.ts";
import { FeedbackPage } from "./pages/feedback.ts";
import { KeysPage } from "./pages/keys.ts";
import { OverviewPage } from "./pages/overview.ts";
import { RecordsPage } from "./pages/records.ts";
import { SignIn } from "./pages/sign-in.ts";
import { ValidatorPage } from "./pages/validator.ts";
import { Flash } from "./ui.ts";

/** The route: `#/destinations/webhook/whe_…` → ["destinations", "webhook", "whe_…"]. */
function currentRoute(): string[] {
  const decoded = (segment: string) => {
    try {
      return decodeURIComponent(segment);
    } catch {
      // A malformed escape in a pasted link: the segment as it is, rather than a blank page.
      return segment;
    }
  };
  return location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decoded);
}

function useRoute(): string[] {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const onChange = () => setRoute(currentRoute());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

const NAV: Array<[string, string]> = [
  ["overview", "Overview"],
  ["destinations", "Destinations"],
  ["automations", "Automations"],
  ["feedback", "Feedback integrations"],
  ["records", "Records"],
  ["keys", "API keys"],
  ["audit-log", "Audit log"],
  ["validator", "Payload validator"],
];

function page(route: string[], me: Me): VNode {
  const [section, a, b, c, d] = route;
  switch (section) {
    case "automations":
      return html`<${AutomationsPage} me=${me} id=${a} />`;
    case "destinations":
      if (a === "new") return html`<${NewDestinationPage} me=${me} kind=${b ?? "webhook"} />`;
      if (a && b && c === "deliveries" && d)
        return html`<${DeliveryPage} me=${me} kind=${a} id=${b} deliveryId=${d} />`;
      if (a && b && c === "deliveries") return html`<${DeliveriesPage} me=${me} kind=${a} id=${b} />`;
      if (a && b) return html`<${DestinationPage} me=${me} kind=${a} id=${b} />`;
      return html`<${DestinationsPage} me=${me} />`;
    case "keys":
      return html`<${KeysPage} me=${me} />`;
    case "feedback":
      return html`<${FeedbackPage} me=${me} />`;
    case "records":
      return html`<${RecordsPage} id=${a} />`;
    case "audit-log":
      return html`<${AuditLogPage} />`;
    default:
      return html`<${OverviewPage} />`;
  }
}

function App(): VNode {
  const route = useRoute();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [refused, setRefused] = useState(false);
  useEffect(() => {
    const onRefused = () => {
      setRefused(true);
      setMe(null);
    };
    addEventListener(KEY_REFUSED, onRefused);
    if (!storedKey()) setMe(null);
    else call<Me>("GET", "/api/keys/current").then((a) => (a.ok ? setMe(a.data) : setMe(null)));
    return () => removeEventListener(KEY_REFUSED, onRefused);
  }, []);
  // The validator needs no key (seed 000): it is open before signing in, too.
  if (route[0] === "validator" && !me) return html`<main class="page"><${ValidatorPage} /></main>`;
  if (me === undefined) return html`<main class="page"><p>Loading…</p></main>`;
  if (me === null)
    return html`<${SignIn}
      notice=${refused ? "Your key no longer works (it may have been revoked): sign in again." : null}
      onSignedIn=${(m: Me) => {
        setRefused(false);
        setMe(m);
      }} />`;
  const signOut = () => {
    forgetKey();
    setMe(null);
    location.hash = "#/";
  };
  return html`<div class="shell">
    <header class="top">
      <a class="brand" href="#/">Escalation Shield</a>
      <nav aria-label="Sections">
        <ul>
          ${NAV.map(
            ([path, label]) =>
              html`<li><a href=${`#/${path}`} aria-current=${(route[0] ?? "overview") === path ? "page" : undefined}>${label}</a></li>`,
          )}
        </ul>
      </nav>
      <div class="who">
        <span data-testid="organization">${me.organization.slug}</span>
        ${me.scope === "read-only" ? html`<span class="badge">read-only</span>` : null}
        <button type="button" onClick=${signOut}>Sign out</button>
      </div>
    </header>
    <main class="page" id="main" key=${route.join("/")}>
      <${Flash} />
      ${route[0] === "validator" ? html`<${ValidatorPage} />` : page(route, me)}
    </main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app") as HTMLElement);
