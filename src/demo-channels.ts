import type { AddressInfo } from "node:net";
import { type ParsedMail, simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";
import type { SlackMessage } from "./channels/slack-message.ts";

/**
 * The demo's stand-ins for what a real installation reaches over the network: an SMTP server on loopback
 * (STARTTLS with the demo's certificate) that keeps the messages it gets, and a readable print of a Slack
 * message and an email.
 */

export interface DemoSmtp {
  /** `SMTP_URL` for the product. */
  url: string;
  messages: ParsedMail[];
  close(): Promise<void>;
}

export async function startDemoSmtp(tls: { cert: string; key: string }): Promise<DemoSmtp> {
  const messages: ParsedMail[] = [];
  const server = new SMTPServer({
    key: tls.key,
    cert: tls.cert,
    authOptional: true,
    logger: false,
    onData(stream, _session, cb) {
      simpleParser(stream).then(
        (mail) => {
          messages.push(mail);
          cb();
        },
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A Slack message as lines of text: the header, each section and field, the context. */
export function slackLines(message: SlackMessage): string[] {
  const out: string[] = [`  text: ${message.text}`];
  for (const b of message.blocks) {
    if (b.type === "header") out.push(`  [header] ${b.text.text}`);
    if (b.type === "section" && b.text) out.push(...b.text.text.split("\n").map((l) => `  [section] ${l}`));
    if (b.type === "section" && b.fields) {
      for (const f of b.fields) out.push(`  [field] ${f.text.replace("\n", " ")}`);
    }
    if (b.type === "context") for (const e of b.elements) out.push(`  [context] ${e.text}`);
  }
  return out;
}

/** An email's headers that matter and its text part. */
export function emailLines(mail: ParsedMail): string[] {
  const to = (a: ParsedMail["to"]) => (Array.isArray(a) ? a.map((x) => x.text).join(", ") : (a?.text ?? ""));
  return [
    `  From: ${mail.from?.text ?? ""}`,
    `  To: ${to(mail.to)}`,
    `  Subject: ${mail.subject ?? ""}`,
    `  Message-ID: ${mail.messageId ?? ""}`,
    `  (text part; an HTML part comes with it)`,
    ...(mail.text ?? "")
      .trimEnd()
      .split("\n")
      .map((l) => `  | ${l}`),
  ];
}
