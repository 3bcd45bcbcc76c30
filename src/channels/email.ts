import type { Channel, Sent, Verdict } from "./channel.ts";
import { emailMessage } from "./email-message.ts";
import { domainOf, SMTP_ATTEMPT_TIMEOUT_MS } from "./mailer.ts";

/**
 * Email over the operator's SMTP server (`SMTP_URL`, `SMTP_FROM`). Every attempt of a delivery is the same
 * message, with a `Message-ID` made from the delivery id, so a retry after a lost answer is recognisably a
 * copy. A 2xx reply is delivered; 4xx replies (greylisting, a full mailbox for now) and no answer retry on
 * the schedule; 5xx replies fail the delivery at once with the server's words. An attempt ends after 30 s.
 */

/** Where an email destination sends, as stored in its settings. */
export interface EmailSettings {
  to: string[];
  cc: string[];
}

interface SmtpError {
  responseCode?: number;
  response?: string;
  code?: string;
  message?: string;
}

function judge(err: SmtpError): { verdict: Verdict; status: number | null; kind: string; message: string } {
  const status = typeof err.responseCode === "number" ? err.responseCode : null;
  const message = (err.response ?? err.message ?? "SMTP error").slice(0, 500);
  if (status !== null && status >= 500) {
    return { verdict: { kind: "failed", reason: message }, status, kind: "smtp", message };
  }
  if (status !== null && status >= 400) {
    return { verdict: { kind: "retry", healthy: true }, status, kind: "smtp", message };
  }
  const kind = err.code === "ETIMEDOUT" || message.includes("timed out") ? "timeout" : "network";
  return { verdict: { kind: "retry", healthy: false }, status, kind, message };
}

/** People read email: one message a second at most unless the destination says otherwise, so a storm waits and becomes digests. */
export const EMAIL_DEFAULT_RATE_PER_SECOND = 1;

export const emailChannel: Channel = {
  digests: true,
  defaultRatePerSecond: EMAIL_DEFAULT_RATE_PER_SECOND,
  async send(deps, claimed, startedAt): Promise<Sent> {
    const mailer = deps.mailer;
    const settings = claimed.settings as EmailSettings | null;
    const elapsed = () => Date.now() - startedAt.getTime();
    if (!mailer || !settings) {
      // The operator removed SMTP_URL after the destination was made: nothing can go out until it is back.
      return {
        status: null,
        errorKind: "not_configured",
        errorMessage: "SMTP_URL is not set, so email cannot be sent",
        responseExcerpt: null,
        durationMs: elapsed(),
        verdict: { kind: "retry", healthy: false },
      };
    }
    const message = emailMessage(claimed.eventType, claimed.payload, claimed.automationName);
    let timer: NodeJS.Timeout | undefined;
    try {
      const info = await Promise.race([
        mailer.transport.sendMail({
          from: mailer.from,
          to: settings.to,
          cc: settings.cc.length > 0 ? settings.cc : undefined,
          subject: message.subject,
          text: message.text,
          html: message.html,
          messageId: `<${claimed.id}@${domainOf(mailer.from)}>`,
          headers: {
            "Auto-Submitted": "auto-generated",
            "X-Escalation-Shield-Delivery": claimed.id,
            "X-Escalation-Shield-Event": claimed.eventType,
          },
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(Object.assign(new Error("SMTP attempt timed out after 30 s"), { code: "ETIMEDOUT" })),
            SMTP_ATTEMPT_TIMEOUT_MS,
          );
        }),
      ]);
      const reply = String(info.response ?? "");
      const code = Number(/^(\d{3})/.exec(reply)?.[1] ?? 250);
      return {
        status: code,
        errorKind: null,
        errorMessage: null,
        responseExcerpt: reply.slice(0, 500),
        durationMs: elapsed(),
        verdict: { kind: "delivered" },
      };
    } catch (err) {
      const j = judge(err as SmtpError);
      return {
        status: j.status,
        errorKind: j.kind,
        errorMessage: j.message,
        responseExcerpt: null,
        durationMs: elapsed(),
        verdict: j.verdict,
      };
    } finally {
      clearTimeout(timer);
    }
  },
};
