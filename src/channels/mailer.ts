import nodemailer, { type Transporter } from "nodemailer";
import type { SmtpConfig } from "../config.ts";

/** How long one SMTP attempt may take in all, in ms: servers greylist and are slow, so more than a webhook's 5 s. */
export const SMTP_ATTEMPT_TIMEOUT_MS = 30_000;

/** The operator's SMTP server, one pooled transport per process. */
export interface Mailer {
  transport: Transporter;
  from: string;
  close(): void;
}

/** A pooled nodemailer transport for `smtp`; STARTTLS is required unless the URL said `?tls=off`. */
export function createMailer(smtp: SmtpConfig): Mailer {
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    requireTLS: smtp.requireTls,
    ignoreTLS: !smtp.secure && !smtp.requireTls,
    auth: smtp.user === undefined ? undefined : { user: smtp.user, pass: smtp.password ?? "" },
    pool: true,
    maxConnections: 4,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: SMTP_ATTEMPT_TIMEOUT_MS,
  });
  return { transport, from: smtp.from, close: () => transport.close() };
}

/** The domain of an address such as `alerts@example.com` or `Alerts <alerts@example.com>`. */
export function domainOf(address: string): string {
  const m = /@([^\s@<>]+)>?\s*$/.exec(address);
  return m ? (m[1] as string).toLowerCase() : "localhost";
}
