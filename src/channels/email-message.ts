import type { DigestPayload } from "../delivery/digest.ts";
import type { AlertPayload, EventEnvelope } from "../delivery/payloads.ts";
import { renderPayload } from "./channel.ts";

/**
 * Email for every event type: a subject, a text part and an HTML part. Customer text is escaped in the HTML
 * and never reaches a header except the subject, where line breaks are flattened, so feedback cannot add a
 * header or a recipient.
 */
export interface EmailMessage {
  subject: string;
  text: string;
  html: string;
}

const SUBJECT_WORDS = 8;
const SUBJECT_MAX = 120;

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

/** One line, no control characters: what may go into a header. */
function oneLine(text: string): string {
  return text
    .replace(/\p{Cc}+/gu, " ")
    .replace(/\s+/g, " ")
    .trim();
}

function firstWords(text: string): string {
  const words = oneLine(text).split(" ");
  const head = words.slice(0, SUBJECT_WORDS).join(" ");
  return words.length > SUBJECT_WORDS ? `${head}…` : head;
}

function cap(subject: string): string {
  return subject.length <= SUBJECT_MAX ? subject : `${subject.slice(0, SUBJECT_MAX - 1)}…`;
}

/** Rows of name and value, as text lines and as an HTML table; values are plain text. */
function details(rows: [string, string][]): { text: string; html: string } {
  return {
    text: rows.map(([k, v]) => `${k}: ${v}`).join("\n"),
    html: `<table>${rows.map(([k, v]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join("")}</table>`,
  };
}

function link(url: string, label: string): string {
  return `<a href="${escapeHtml(url)}">${escapeHtml(label)}</a>`;
}

export function alertEmail(alert: AlertPayload, automationName: string | null): EmailMessage {
  const test = alert.test ? "[Test] " : "";
  const level = alert.levels.escalation_level;
  const source = alert.record.source;
  const subject = cap(
    `${test}[Escalation: ${level}] ${oneLine(source)}: ${firstWords(alert.record.content_excerpt)}`,
  );
  const rows: [string, string][] = [
    ["Escalation level", level],
    ["Emotional intensity", alert.levels.emotional_intensity_level],
    ["Sentiment shift", alert.levels.sentiment_shift ?? "n/a"],
    ["Source", source],
    ["When", alert.record.created_at],
    ["Automation", automationName ?? alert.automation_id],
    ["Record", alert.record.url],
  ];
  if (alert.record.source_url) rows.push(["Source link", alert.record.source_url]);
  const table = details(rows);
  const links = [link(alert.record.url, "Open the record")];
  if (alert.record.source_url) links.push(link(alert.record.source_url, "Open the source"));
  const quoted = escapeHtml(alert.record.content_excerpt).replace(/\r?\n/g, "<br>");
  return {
    subject,
    text: `${alert.record.content_excerpt}\n\n${table.text}\n`,
    html: `<!doctype html><html><body><h2>${escapeHtml(`${test}Escalation: ${level}`)}</h2><blockquote>${quoted}</blockquote>${table.html}<p>${links.join(" · ")}</p></body></html>`,
  };
}

const LEVELS = ["low", "medium", "high", "extreme"];

/** A storm's digest: the listed alerts one after the other, the rest counted. */
export function digestEmail(d: DigestPayload): EmailMessage {
  const top = d.alerts.reduce((m, a) => Math.max(m, LEVELS.indexOf(a.levels.escalation_level)), 0);
  const more = d.count - d.alerts.length;
  const items = d.alerts.map((a) => ({
    head: `[${a.levels.escalation_level}] ${a.record.source}, ${a.record.created_at}${d.automations[a.automation_id] ? `, ${d.automations[a.automation_id]}` : ""}`,
    excerpt: a.record.content_excerpt,
    url: a.record.url,
  }));
  const tail = more > 0 ? `…and ${more} more.` : "";
  return {
    subject: cap(`[Escalation digest] ${d.count} alerts, up to ${LEVELS[top]}`),
    text: `${items.map((i) => `${i.head}\n${i.excerpt}\n${i.url}`).join("\n\n")}\n\n${tail}\n`,
    html: `<!doctype html><html><body><h2>${escapeHtml(`${d.count} escalation alerts`)}</h2>${items
      .map(
        (i) =>
          `<h3>${escapeHtml(i.head)}</h3><blockquote>${escapeHtml(i.excerpt)}</blockquote><p>${link(i.url, "Open the record")}</p>`,
      )
      .join("")}<p>${escapeHtml(tail)}</p></body></html>`,
  };
}

export function eventEmail(envelope: EventEnvelope): EmailMessage {
  const d = envelope.data as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const test = d.test === true ? "[Test] " : "";
  const destination = str(d.url) ?? str(d.webhook_id) ?? "a destination";
  const titles: Record<string, string> = {
    "test.webhook": "Test message from Escalation Shield",
    "destination.failing": `Destination failing: ${destination}`,
    "destination.disabled": `Destination disabled: ${destination}`,
    "destination.recovered": `Destination recovered: ${destination}`,
  };
  const title = titles[envelope.event] ?? envelope.event;
  const rows: [string, string][] = [["Event", envelope.event]];
  if (str(d.message)) rows.push(["Message", str(d.message) as string]);
  if (envelope.event !== "test.webhook") rows.push(["Destination", destination]);
  if (str(d.failing_since)) rows.push(["Failing since", str(d.failing_since) as string]);
  if (str(d.reason)) rows.push(["Reason", str(d.reason) as string]);
  rows.push(["At", envelope.created_at]);
  const table = details(rows);
  return {
    subject: cap(oneLine(`${test}[Escalation Shield] ${title}`)),
    text: `${title}\n\n${table.text}\n`,
    html: `<!doctype html><html><body><h2>${escapeHtml(`${test}${title}`)}</h2>${table.html}</body></html>`,
  };
}

/** The email for any delivery's frozen payload. */
export function emailMessage(
  eventType: string,
  payload: string,
  automationName: string | null,
): EmailMessage {
  return renderPayload(eventType, payload, {
    alert: (a) => alertEmail(a, automationName),
    digest: digestEmail,
    event: eventEmail,
  });
}
