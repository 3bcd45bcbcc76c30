import { DIGEST_EVENT, type DigestPayload } from "../delivery/digest.ts";
import type { ClaimedDelivery } from "../delivery/outbox.ts";
import { ALERT_EVENT, type AlertPayload, type EventEnvelope } from "../delivery/payloads.ts";
import { maskSecrets } from "../delivery/request.ts";
import type { OutboundError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { OutboundClient } from "../outbound/http.ts";
import type { OpenedSecrets } from "../secrets/cache.ts";
import type { Mailer } from "./mailer.ts";

/**
 * What differs between kinds of destination lives behind this interface, one module per kind: how one attempt
 * of a delivery is rendered and sent, and how the answer is judged. Everything else (the outbox, claims,
 * retries, history, isolation, health, test events, recover, retention, metrics) is the same for every kind.
 * A new kind is a new module here, registered in `index.ts`.
 */

/** How one attempt ended, as the delivery core acts on it. */
export type Verdict =
  /** The destination took it. */
  | { kind: "delivered" }
  /** Try again on the schedule (sooner than `retryAfterS` never); `healthy` says whether it counts against the destination. */
  | { kind: "retry"; healthy: boolean; retryAfterS?: number }
  /** The destination said it never will: fail the delivery now and mark the destination failing. */
  | { kind: "failed"; reason: string }
  /** The destination asked to slow down: wait `waitS` and try again, spending no attempt. */
  | { kind: "throttled"; waitS: number };

/** One attempt's result: what the history stores, and the verdict. */
export interface Sent {
  /** The answer's status code when the channel has one (HTTP status, SMTP reply code); null without an answer. */
  status: number | null;
  /** Why no answer came (`timeout`, `network`, `blocked`…); null when one did. */
  errorKind: string | null;
  errorMessage: string | null;
  /** The start of the answer, with every secret of the attempt masked. */
  responseExcerpt: string | null;
  durationMs: number;
  verdict: Verdict;
}

/** What a channel may use to send. */
export interface ChannelDeps {
  secrets: OpenedSecrets;
  http: OutboundClient;
  log: Logger;
  /** The operator's SMTP server; undefined when SMTP_URL is not set. */
  mailer: Mailer | undefined;
}

export interface Channel {
  /** Attempts per second when the destination sets no `rate_limit_per_second`; absent: no limit. */
  defaultRatePerSecond?: number;
  /** People read it (Slack, email): a storm of alerts goes out as digests (see delivery/digest.ts). */
  digests?: boolean;
  /** Sends one attempt of `claimed` (its frozen payload, rendered for this kind) and judges the answer. */
  send(deps: ChannelDeps, claimed: ClaimedDelivery, startedAt: Date): Promise<Sent>;
}

/**
 * What an attempt to a name with no public address stores, whether the name resolved to non-public addresses
 * (the guard refused it) or did not resolve at all: told apart, the two would let a tenant admin find out
 * which internal names exist. The operator's log has which it was.
 */
export const BLOCKED_MESSAGE = "destination does not resolve to a public address";

/** Resolver answers meaning "no such name" (not a resolver that failed, which is worth telling apart). */
const NO_SUCH_NAME = new Set(["ENOTFOUND", "ENODATA"]);

/**
 * What an attempt that got no answer (timeout, refused, blocked…) stores: the error with every secret masked.
 * A blocked attempt, and one to a name that does not exist, store kind `blocked` and only
 * {@link BLOCKED_MESSAGE}; the detail (the name, the private address it resolved to) goes to the server log,
 * so the history is no map of the internal network.
 */
export function noAnswer(
  deps: ChannelDeps,
  claimed: ClaimedDelivery,
  err: OutboundError,
  secrets: (string | null)[],
  startedAt: Date,
): Sent {
  const detail = maskSecrets(err.message, secrets).slice(0, 500);
  const unresolvable = err.kind === "blocked" || (err.kind === "dns" && NO_SUCH_NAME.has(err.code ?? ""));
  if (unresolvable) {
    deps.log.warn(
      { delivery: claimed.id, webhook: claimed.webhookId, kind: err.kind, detail },
      "delivery blocked by the outbound guard",
    );
  }
  return {
    status: null,
    errorKind: unresolvable ? "blocked" : err.kind,
    errorMessage: unresolvable ? BLOCKED_MESSAGE : detail,
    responseExcerpt: null,
    durationMs: Date.now() - startedAt.getTime(),
    verdict: { kind: "retry", healthy: false },
  };
}

/** Renders a delivery's frozen payload with the renderer of its event type: an alert, a digest, or an envelope event. */
export function renderPayload<M>(
  eventType: string,
  payload: string,
  render: {
    alert(a: AlertPayload): M;
    digest(d: DigestPayload): M;
    event(e: EventEnvelope): M;
  },
): M {
  const parsed: unknown = JSON.parse(payload);
  if (eventType === DIGEST_EVENT) return render.digest(parsed as DigestPayload);
  if (eventType === ALERT_EVENT) return render.alert(parsed as AlertPayload);
  return render.event(parsed as EventEnvelope);
}

/**
 * How much of an answer to read so that every secret starting inside the stored excerpt is read whole, and so
 * masked whole, before the excerpt is cut (a secret's prefix would otherwise survive the masking), in bytes.
 */
export function readLimit(excerptBytes: number, secrets: (string | null)[]): number {
  const longest = Math.max(0, ...secrets.map((s) => (s ? Buffer.byteLength(s) : 0)));
  return excerptBytes + longest + 16;
}
