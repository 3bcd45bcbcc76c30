import { DelayedError, type Job } from "bullmq";
import { eq } from "drizzle-orm";
import type { Db } from "../db/client.ts";
import { webhooks } from "../db/schema.ts";
import {
  applyOutcome,
  type HealthEvent,
  healthEventDeliveries,
  mayChangeHealth,
} from "../destinations/health.ts";
import { holdAllPending } from "../destinations/store.ts";
import { DecryptError, OutboundError } from "../errors.ts";
import type { DeliveryJob } from "../jobs.ts";
import type { Logger } from "../log.ts";
import type { DeliveryMetrics } from "../metrics.ts";
import { ATTEMPT_TIMEOUT_MS, type OutboundClient } from "../outbound/http.ts";
import { SecretBox } from "../secrets/box.ts";
import type { OpenedSecrets } from "../secrets/cache.ts";
import { sealContext } from "../secrets/contexts.ts";
import type { SigningKeys } from "../signing/headers.ts";
import type { ClaimBatcher } from "./claims.ts";
import type { DestinationGuard } from "./isolation.ts";
import {
  type AttemptRecord,
  type ClaimedDelivery,
  insertDeliveries,
  unclaim,
  whyUnclaimable,
} from "./outbox.ts";
import { type DeliveryQueue, queueDeliveries } from "./queue.ts";
import { deliveryHeaders, maskSecrets } from "./request.ts";
import { parseRetryAfter, retryDelayMs } from "./schedule.ts";
import type { SecretProblems } from "./secret-problems.ts";
import type { JobWaker } from "./waker.ts";
import type { AttemptWriter } from "./writer.ts";

/** How far a claim pushes the next attempt time: well past one attempt, so only a dead worker's claim lapses. */
export const CLAIM_LEASE_MS = 30_000;
/** Bytes of response body stored with an attempt. */
export const EXCERPT_BYTES = 2048;

export interface AttemptDeps {
  db: Db;
  /** Claims (with a lease of {@link CLAIM_LEASE_MS}) batched across concurrent jobs. */
  claims: ClaimBatcher;
  secrets: OpenedSecrets;
  http: OutboundClient;
  log: Logger;
  guard: DestinationGuard;
  writer: AttemptWriter;
  deliveryQueue: DeliveryQueue;
  /** Seconds between attempts; see Config.retrySchedule. */
  retrySchedule: readonly number[];
  /** How long a destination may keep failing before it is disabled, in ms. */
  disableAfterMs: number;
  /** Where attempt outcomes and held-back jobs are counted; none when left out. */
  metrics?: DeliveryMetrics;
  /** Wakes jobs that wait for a destination's free slot. */
  waker: JobWaker;
  /** Where secrets that do not open are reported (a log line a minute). */
  secretProblems: SecretProblems;
}

/** What one attempt ended with, as the history stores it. */
interface Sent {
  attempt: AttemptRecord;
  retryAfterS: number | undefined;
}

/** The operational events endpoint health raises. */
const HEALTH_EVENTS: ReadonlySet<string> = new Set<HealthEvent>([
  "destination.failing",
  "destination.disabled",
  "destination.recovered",
]);

/** What the guard checks before a claim: the destination's own cap (null: the default) and rate (null: none). */
interface Limits {
  cap: number | null;
  ratePerSecond: number | null;
}

/** Remembered per destination from its last claim, so its limits are known before the next claim. */
const knownLimits = new Map<string, Limits>();

/** Look-ups of limits not known yet, shared by the jobs of one destination that start together. */
const limitLookups = new Map<string, Promise<Limits>>();

/**
 * The destination's limits. Known from the last claim; the first job of a destination in this process reads
 * them first, since a worker started with a backlog would otherwise admit a whole wave of attempts under
 * the default cap and no rate before any claim told it the destination's own.
 */
function limitsOf(db: Db, webhookId: string): Limits | Promise<Limits> {
  const known = knownLimits.get(webhookId);
  if (known !== undefined) return known;
  let lookup = limitLookups.get(webhookId);
  if (!lookup) {
    lookup = db
      .select({ cap: webhooks.maxInFlight, ratePerSecond: webhooks.rateLimitPerSecond })
      .from(webhooks)
      .where(eq(webhooks.id, webhookId))
      .then(([row]) => {
        const limits = { cap: row?.cap ?? null, ratePerSecond: row?.ratePerSecond ?? null };
        if (!knownLimits.has(webhookId)) knownLimits.set(webhookId, limits);
        return limits;
      })
      .finally(() => limitLookups.delete(webhookId));
    limitLookups.set(webhookId, lookup);
  }
  return lookup;
}

/** A little randomness so jobs held back together do not all come back in the same millisecond. */
function jittered(waitMs: number, spreadMs: number): number {
  return Date.now() + Math.round(waitMs + Math.random() * spreadMs);
}

/**
 * Moves the job to BullMQ's delayed set for `waitMs` and throws the DelayedError BullMQ expects for that
 * move. Waits reach here as durations measured on the database's or Redis's clock; only here do they
 * become a time on this worker's clock, so a worker whose clock is off neither sleeps too long nor spins.
 */
async function waitFor(
  job: Job<DeliveryJob>,
  token: string | undefined,
  waitMs: number,
  spreadMs = 0,
): Promise<never> {
  await job.moveToDelayed(jittered(waitMs, spreadMs), token);
  throw new DelayedError();
}

/**
 * Runs one attempt of the delivery a job points at. Returns when the delivery is finished (delivered,
 * failed for good, superseded, deleted or held); when it must be tried again later, moves the job to
 * BullMQ's delayed set and throws DelayedError, which BullMQ expects for that move.
 *
 * Order matters for throughput: the destination's in-flight cap and circuit breaker are checked first, in
 * Redis, so work for a saturated or broken destination waits without a database round trip and without
 * holding a worker slot; such waiting spends none of the delivery's attempts.
 */
export async function runDeliveryJob(
  deps: AttemptDeps,
  job: Job<DeliveryJob>,
  token: string | undefined,
): Promise<string> {
  const { d: id, g: generation, w: webhookId } = job.data;
  const { cap, ratePerSecond } = await limitsOf(deps.db, webhookId);
  const admission = await deps.guard.acquire(webhookId, id, cap, undefined, job.id, ratePerSecond);
  if (!admission.admitted) {
    deps.metrics?.heldBack(admission.reason);
    // A rate slot is reserved for this very job at an exact time; the others are spread out a little.
    const spread = admission.reason === "open" ? 2000 : admission.reason === "cap" ? 1000 : 0;
    await waitFor(job, token, admission.waitMs, spread);
  }
  let healthy: boolean | undefined;
  try {
    const claimed = await deps.claims.claim(id, generation);
    if (!claimed) {
      const why = await whyUnclaimable(deps.db, id, generation);
      if (why.kind !== "wait") return why.kind;
      return await waitFor(job, token, why.delayMs);
    }
    knownLimits.set(webhookId, { cap: claimed.maxInFlight, ratePerSecond: claimed.ratePerSecond });
    let sent: Sent;
    try {
      sent = await send(deps, claimed);
    } catch (err) {
      if (!(err instanceof DecryptError)) throw err;
      await holdUnreadable(deps, claimed, err);
      return "held";
    }
    const { attempt, retryAfterS } = sent;
    // A destination that answers, even with a 4xx, is up; 5xx, 429 and no answer at all count against it.
    const status = attempt.httpStatus;
    healthy = status !== null && status < 500 && status !== 429;
    const ok = status !== null && status >= 200 && status < 300;
    const exhausted = !ok && attempt.attemptNumber >= claimed.maxAttempts;
    const retryInMs = retryDelayMs(
      deps.retrySchedule,
      attempt.attemptNumber - claimed.scheduleStart,
      retryAfterS,
    );
    deps.metrics?.attempt(
      ok ? "delivered" : exhausted ? "failed" : "retry",
      // Either a status arrived (counted by class) or the error kind says why none did.
      attempt.errorKind ?? `${Math.floor((status ?? 0) / 100)}xx`,
      attempt.durationMs / 1000,
    );
    await deps.writer.accept(attempt, { token: claimed.claimToken, generation }, { ok, retryInMs });
    await trackHealth(deps, claimed, ok, attempt);
    if (ok) return "delivered";
    if (exhausted) {
      deps.log.warn({ delivery: id, attempts: attempt.attemptNumber }, "delivery failed: attempts exhausted");
      return "failed";
    }
    // Retries queue in due-time order with everything else: a priority would starve them under a steady
    // flow of first attempts, since BullMQ takes no prioritized job while unprioritized ones wait.
    return await waitFor(job, token, retryInMs);
  } finally {
    const wake =
      healthy === undefined
        ? await deps.guard.cancel(webhookId, id, cap)
        : (await deps.guard.release(webhookId, id, healthy, undefined, cap)).wake;
    if (wake.length > 0) deps.waker.wake(wake);
  }
}

/**
 * A secret that does not open is the operator's mistake (a wrong or missing SECRETS_KEY), not the
 * destination's: the delivery is held with that reason, no attempt is spent, health and breakers are left
 * alone, and it goes out by itself once the right key is configured (see releaseSecretHeld).
 */
async function holdUnreadable(deps: AttemptDeps, claimed: ClaimedDelivery, err: DecryptError): Promise<void> {
  await unclaim(deps.db, claimed.id, claimed.claimToken, {
    reason: "secret_unreadable",
    error: `secret_unreadable: ${err.message}`,
  });
  deps.metrics?.secretUnreadable();
  deps.secretProblems.report(SecretBox.keyIdOf(claimed.signingSecretSealed), err);
}

/** Opens the destination's secrets, signs and sends one attempt, and describes what happened. */
async function send(deps: AttemptDeps, claimed: ClaimedDelivery): Promise<Sent> {
  const wh = claimed.webhookId;
  const open = (sealed: string | null, context: string) =>
    sealed ? deps.secrets.open(sealed, context) : null;
  const credential = open(claimed.credentialSealed, sealContext.credential(wh));
  const signing: SigningKeys = {
    scheme: claimed.signatureScheme,
    secret: deps.secrets.open(claimed.signingSecretSealed, sealContext.signingSecret(wh)),
    previousSecret: open(claimed.previousSigningSecretSealed, sealContext.previousSigningSecret(wh)),
    ed25519SecretKey: open(claimed.ed25519SecretKeySealed, sealContext.ed25519SecretKey(wh)),
  };
  // Nothing secret may come back through the history: an echoing receiver repeats what it was sent.
  const secrets = [credential, signing.secret, signing.previousSecret, signing.ed25519SecretKey];
  const startedAt = new Date();
  const headers = deliveryHeaders(claimed, { credential, signing }, Math.floor(startedAt.getTime() / 1000));
  const attempt: AttemptRecord = {
    deliveryId: claimed.id,
    attemptNumber: claimed.attemptNumber,
    startedAt,
    durationMs: 0,
    httpStatus: null,
    errorKind: null,
    errorMessage: null,
    responseExcerpt: null,
  };
  let retryAfterS: number | undefined;
  try {
    const res = await deps.http.send({
      method: "POST",
      url: claimed.url,
      headers,
      body: claimed.payload,
      timeoutMs: ATTEMPT_TIMEOUT_MS,
      // Read past the excerpt so a secret straddling its end is masked whole before the cut.
      maxBodyBytes: EXCERPT_BYTES + 1024,
    });
    attempt.durationMs = res.durationMs;
    attempt.httpStatus = res.status;
    attempt.responseExcerpt = maskSecrets(res.bodyExcerpt, secrets).slice(0, EXCERPT_BYTES);
    if (res.status === 429 || res.status === 503) retryAfterS = parseRetryAfter(res.headers["retry-after"]);
  } catch (err) {
    if (!(err instanceof OutboundError)) throw err;
    attempt.durationMs = Date.now() - startedAt.getTime();
    attempt.errorKind = err.kind;
    attempt.errorMessage = maskSecrets(err.message, secrets).slice(0, 500);
  }
  deps.log.debug(
    {
      delivery: claimed.id,
      webhook: wh,
      attempt: attempt.attemptNumber,
      status: attempt.httpStatus,
      error: attempt.errorKind,
      ms: attempt.durationMs,
    },
    "delivery attempt",
  );
  return { attempt, retryAfterS };
}

/**
 * Applies the attempt to the destination's health and, on a transition (failing, disabled, recovered),
 * queues the operational event to every destination of the organization that subscribes to it.
 */
async function trackHealth(
  deps: AttemptDeps,
  claimed: ClaimedDelivery,
  ok: boolean,
  attempt: AttemptRecord,
): Promise<void> {
  const before = {
    webhookId: claimed.webhookId,
    orgId: claimed.orgId,
    url: claimed.url,
    failingSince: claimed.failingSince,
  };
  // The outcomes of health events themselves leave health alone. Otherwise an event about one destination that
  // fails at another raises events about that one, which fail at the others in turn: with several destinations
  // behind one flaky receiver, a few alerts grew into hundreds of events within seconds.
  if (HEALTH_EVENTS.has(claimed.eventType)) return;
  if (!mayChangeHealth(before, ok, deps.disableAfterMs)) return;
  const lastError = attempt.errorKind
    ? `${attempt.errorKind}: ${attempt.errorMessage ?? ""}`
    : `HTTP ${attempt.httpStatus}`;
  // One clock reading for the transition and its event, so a `destination.failing` event announces the very
  // `failing_since` that is stored (and that a later `destination.disabled` event and reason repeat).
  const now = new Date();
  let disabled = false;
  const pending = await deps.db.transaction(async (tx) => {
    const change = await applyOutcome(tx, before, ok, ok ? null : lastError, deps.disableAfterMs, now);
    if (!change) return [];
    disabled = change.event === "destination.disabled";
    deps.log.warn(
      { webhook: claimed.webhookId, event: change.event, reason: change.reason },
      "destination health changed",
    );
    const items = await healthEventDeliveries(tx, before, change.event, change.reason, now);
    return (await insertDeliveries(tx, items, deps.retrySchedule.length + 1)).pending;
  });
  await queueDeliveries(deps.deliveryQueue, pending);
  if (disabled) await holdAllPending(deps.db, claimed.webhookId);
}
