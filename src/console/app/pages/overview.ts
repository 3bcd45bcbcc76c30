import { html } from "htm/preact";
import type { VNode } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { call } from "../api.ts";
import { Banner, When } from "../ui.ts";

interface Stats {
  window: "1h" | "24h";
  bucket_seconds: number;
  series: Array<{ at: string; delivered: number; failed: number }>;
  pending: number;
  held: number;
  failing: Array<{ id: string; kind: string; name: string; failing_since: string }>;
  disabled: Array<{ id: string; kind: string; name: string; disabled_reason: string | null }>;
}

/** Delivered and failed per minute as a uPlot chart; the caption gives the totals in text. */
function Chart(props: { stats: Stats }): VNode {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const xs = props.stats.series.map((p) => Date.parse(p.at) / 1000);
    const plot = new uPlot(
      {
        width: Math.max(280, el.clientWidth),
        height: 220,
        series: [
          {},
          { label: "delivered", stroke: "#116329", width: 2 },
          { label: "failed", stroke: "#a40e26", width: 2 },
        ],
        axes: [{}, { label: "per minute" }],
      },
      [xs, props.stats.series.map((p) => p.delivered), props.stats.series.map((p) => p.failed)],
      el,
    );
    return () => plot.destroy();
  }, [props.stats]);
  const total = (k: "delivered" | "failed") => props.stats.series.reduce((n, p) => n + p[k], 0);
  return html`<figure>
    <div ref=${box} class="chart" aria-hidden="true"></div>
    <figcaption>
      ${`${total("delivered")} delivered, ${total("failed")} failed in the last ${props.stats.window}`}
    </figcaption>
  </figure>`;
}

/** The organization's own deliveries per minute by outcome, its unhealthy destinations and its backlog. */
export function OverviewPage(): VNode {
  const [span, setSpan] = useState<"1h" | "24h">("1h");
  const [stats, setStats] = useState<Stats | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    // A slow answer for the window left behind must not replace the one asked for since.
    let current = true;
    call<Stats>("GET", `/api/stats/deliveries?window=${span}`).then((a) => {
      if (!current) return;
      if (a.ok) setStats(a.data);
      else setError(a.error.msg);
    });
    return () => {
      current = false;
    };
  }, [span]);
  return html`<h1>Overview</h1>
    ${error ? html`<${Banner} kind="error">${error}</${Banner}>` : null}
    <div class="inline" role="group" aria-label="Window">
      <button type="button" aria-pressed=${span === "1h"} onClick=${() => setSpan("1h")}>Last hour</button>
      <button type="button" aria-pressed=${span === "24h"} onClick=${() => setSpan("24h")}>Last day</button>
    </div>
    ${
      stats
        ? html`<${Chart} stats=${stats} />
          <dl class="facts">
            <dt>Pending</dt><dd data-testid="pending">${stats.pending}</dd>
            <dt>Held</dt><dd data-testid="held">${stats.held}</dd>
          </dl>
          <h2>Failing destinations</h2>
          ${
            stats.failing.length === 0
              ? html`<p class="muted">None.</p>`
              : html`<ul>${stats.failing.map(
                  (d) =>
                    html`<li><a href=${`#/destinations/${d.kind}/${d.id}`}>${d.name}</a> failing since <${When} at=${d.failing_since} /></li>`,
                )}</ul>`
          }
          <h2>Disabled destinations</h2>
          ${
            stats.disabled.length === 0
              ? html`<p class="muted">None.</p>`
              : html`<ul>${stats.disabled.map(
                  (d) =>
                    html`<li><a href=${`#/destinations/${d.kind}/${d.id}`}>${d.name}</a>${d.disabled_reason ? `: ${d.disabled_reason}` : ""}</li>`,
                )}</ul>`
          }`
        : html`<p>Loading…</p>`
    }`;
}
