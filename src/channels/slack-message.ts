import type { DigestPayload } from "../delivery/digest.ts";
import type { AlertPayload, EventEnvelope } from "../delivery/payloads.ts";
import { renderPayload } from "./channel.ts";

/**
 * Slack Block Kit messages for every event type, within Slack's limits (3,000 characters of section text,
 * 10 fields of 2,000, 150 characters of header, 50 blocks). Text that came from customers goes through
 * {@link escapeSlack}, so `<!channel>`, `<@U123>` or `<https://evil|click>` in feedback are shown, never acted on.
 */

/** Slack's message: blocks plus the plain `text` shown in notifications and where blocks cannot be. */
export interface SlackMessage {
  text: string;
  blocks: Block[];
}

type Text = { type: "mrkdwn" | "plain_text"; text: string };
type Block =
  | { type: "header"; text: Text }
  | { type: "section"; text?: Text; fields?: Text[] }
  | { type: "context"; elements: Text[] };

const SECTION_MAX = 3000;
const FIELD_MAX = 2000;
const HEADER_MAX = 150;

/** Escapes the three characters Slack's mrkdwn gives meaning to (links, mentions, `<!channel>`). */
export function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A link `<url|label>`; characters that would end the link early are percent-encoded in the URL. */
function link(url: string, label: string): string {
  const safe = url.replace(/[|<>]/g, (c) => encodeURIComponent(c)).replace(/&/g, "&amp;");
  return `<${safe}|${escapeSlack(label)}>`;
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const mrkdwn = (text: string, max = SECTION_MAX): Text => ({ type: "mrkdwn", text: cut(text, max) });
const field = (name: string, value: string): Text => mrkdwn(`*${name}*\n${value}`, FIELD_MAX);
const header = (text: string): Block => ({
  type: "header",
  text: { type: "plain_text", text: cut(text, HEADER_MAX) },
});

/** A time Slack shows in the reader's own time zone, with the ISO time as the fallback. */
function when(iso: string): string {
  const seconds = Math.floor(Date.parse(iso) / 1000);
  if (!Number.isFinite(seconds)) return escapeSlack(iso);
  return `<!date^${seconds}^{date_short_pretty} {time}|${escapeSlack(iso)}>`;
}

/** The message for an alert; `automationName` is the automation's name when it still exists. */
export function alertMessage(alert: AlertPayload, automationName: string | null): SlackMessage {
  const level = alert.levels.escalation_level;
  const source = alert.record.source;
  const excerpt = alert.record.content_excerpt;
  const title = `${alert.test ? "[Test] " : ""}Escalation: ${level}`;
  const quoted = escapeSlack(excerpt)
    .split("\n")
    .map((line) => `>${line}`)
    .join("\n");
  const links = [link(alert.record.url, "Open the record")];
  if (alert.record.source_url) links.push(link(alert.record.source_url, "Source"));
  const blocks: Block[] = [
    header(title),
    { type: "section", text: mrkdwn(quoted) },
    {
      type: "section",
      fields: [
        field("Source", escapeSlack(source)),
        field("Emotional intensity", alert.levels.emotional_intensity_level),
        field("Sentiment shift", alert.levels.sentiment_shift ?? "n/a"),
        field("When", when(alert.record.created_at)),
        field("Automation", escapeSlack(automationName ?? alert.automation_id)),
      ],
    },
    { type: "context", elements: [mrkdwn(links.join("  ·  "))] },
  ];
  const text = cut(`${title} (${escapeSlack(source)}): ${escapeSlack(excerpt)}`, 3000);
  return { text, blocks };
}

/** Characters of each alert's excerpt in a digest: 20 of them fit a message comfortably. */
const DIGEST_EXCERPT = 280;

/** A storm's digest: one section per listed alert, the rest counted. */
export function digestMessage(d: DigestPayload): SlackMessage {
  const title = `${d.count} escalation alerts`;
  const blocks: Block[] = [header(title)];
  for (const a of d.alerts) {
    const name = d.automations[a.automation_id];
    const line = `*${a.levels.escalation_level}* · ${escapeSlack(a.record.source)} · ${when(a.record.created_at)} · ${link(a.record.url, "Open the record")}`;
    const quote = `>${escapeSlack(cut(a.record.content_excerpt, DIGEST_EXCERPT)).replace(/\n/g, " ")}`;
    blocks.push({
      type: "section",
      text: mrkdwn(`${line}${name ? ` · ${escapeSlack(name)}` : ""}\n${quote}`),
    });
  }
  const more = d.count - d.alerts.length;
  if (more > 0) blocks.push({ type: "context", elements: [mrkdwn(`…and ${more} more.`)] });
  return { text: `${title}: more arrived at once than one message each would carry.`, blocks };
}

/** The message for an operational or test event (`test.webhook`, `destination.*`). */
export function eventMessage(envelope: EventEnvelope): SlackMessage {
  const d = envelope.data as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const test = d.test === true ? "[Test] " : "";
  const destination = str(d.url) ?? str(d.webhook_id) ?? "a destination";
  const lines: Record<string, { title: string; body: string }> = {
    "test.webhook": {
      title: "Test message from Escalation Shield",
      body: escapeSlack(str(d.message) ?? "This destination receives Escalation Shield's alerts."),
    },
    "destination.failing": {
      title: "A destination is failing",
      body: `Deliveries to ${escapeSlack(destination)} have failed since ${when(str(d.failing_since) ?? envelope.created_at)}.`,
    },
    "destination.disabled": {
      title: "A destination was disabled",
      body: `${escapeSlack(destination)} was disabled: ${escapeSlack(str(d.reason) ?? "it kept failing")}. What it would have received is held until it is enabled again.`,
    },
    "destination.recovered": {
      title: "A destination recovered",
      body: `Deliveries to ${escapeSlack(destination)} succeed again.`,
    },
  };
  const known = lines[envelope.event] ?? { title: envelope.event, body: "" };
  const reason = str(d.reason);
  const blocks: Block[] = [header(`${test}${known.title}`)];
  if (known.body) blocks.push({ type: "section", text: mrkdwn(known.body) });
  if (reason && envelope.event === "destination.failing") {
    blocks.push({ type: "context", elements: [mrkdwn(`Last error: ${escapeSlack(reason)}`)] });
  }
  return { text: cut(`${test}${known.title}. ${known.body}`, 3000), blocks };
}

/** The message for any delivery's frozen payload. */
export function slackMessage(
  eventType: string,
  payload: string,
  automationName: string | null,
): SlackMessage {
  return renderPayload(eventType, payload, {
    alert: (a) => alertMessage(a, automationName),
    digest: digestMessage,
    event: eventMessage,
  });
}
