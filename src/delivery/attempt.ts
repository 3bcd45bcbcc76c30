import { DelayedError, type Job } from "bullmq";
import { eq } from "drizzle-orm";
import type { Sent } from "../channels/channel.ts";
import { channelOf, effectiveRate } from "../channels/index.ts";
import type { Mailer } from "../channels/mailer.ts";
import type { Db } from "../db/client.ts";
import { webhooks } from "../db/schema.ts";
import {
  applyOutcome,
  type HealthEvent,
  healthEventDeliveries,
  mayChangeHealth,
} from "../destinations/health.ts";
import { holdAllPending } from "../destinations/store.ts";
import { DecryptError } from "../errors.ts";
import { type DeliveryJob, deliveryJobId } from "../jobs.ts";
import type { Logger } from "../log.ts";
import type { DeliveryMetrics } from "../metrics.ts";
import type { OutboundClient } from "../outbound/http.ts";
import { SecretBox } from "../secrets/box.ts";
import type { OpenedSecrets } from "../secrets/cache.ts";
import type { ClaimBatcher } from "./claims.ts";
import { DEFAULT_DIGEST_AFTER, formDigest } from "./digest.ts";
import type { DestinationGuard } from "./isolation.ts";
import {
  type AttemptRecord,
  type ClaimedDelivery,
  insertDeliveries,
  unclaim,
  whyUnclaimable,
} from "./outbox.ts";
import { type DeliveryQueue, queueDeliveries } from "./queue.ts";
import { retryDelayMs } from "./schedule.ts";
import type { SecretProblems } from "./secret-problems.ts";
import type { JobWaker } from "./waker.ts";
import type { AttemptWriter } from "./writer.ts";

/** How far a claim pushes the next attempt time: well past one attempt, so only a dead worker's claim lapses. */
export const CLAIM_LEASE_MS = 30_000;

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
  /** The operator's SMTP server for email destinations; undefined without SMTP_URL. */
  mailer: Mailer | undefined;
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
      .select({ cap: webhooks.maxInFlight, rate: webhooks.rateLimitPerSecond, kind: webhooks.kind })
      .from(webhooks)
      .where(eq(webhooks.id, webhookId))
      .then(([row]) => {
        const limits = {
          cap: row?.cap ?? null,
          ratePerSecond: row ? effectiveRate(row.kind, row.rate) : null,
        };
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
    if (channelOf(claimed.kind).digests) {
      const digest = await formDigest(
        deps.db,
        claimed,
        claimed.digestAfter ?? DEFAULT_DIGEST_AFTER,
        deps.retrySchedule.length + 1,
      );
      if (digest) {
        await settleCarried(deps, claimed, digest.carried);
        await queueDeliveries(deps.deliveryQueue, [digest.digest]);
        deps.log.info(
          { delivery: id, digest: digest.digest.id, webhook: webhookId, alerts: digest.carried.length },
          "alerts gathered into a digest",
        );
        return "digested";
      }
    }
    let sent: Awaited<ReturnType<typeof send>>;
    try {
      sent = await send(deps, claimed);
    } catch (err) {
      if (!(err instanceof DecryptError)) throw err;
      await holdUnreadable(deps, claimed, err);
      return "held";
    }
    const { attempt, verdict } = sent;
    if (verdict.kind === "throttled") {
      // The destination asked to slow down: its answer is no failure and costs the delivery no attempt.
      await unclaim(deps.db, id, claimed.claimToken);
      deps.metrics?.heldBack("throttled");
      return await waitFor(job, token, verdict.waitS * 1000, 250);
    }
    const ok = verdict.kind === "delivered";
    healthy = ok || (verdict.kind === "retry" && verdict.healthy);
    const final = verdict.kind === "failed";
    const exhausted = !ok && (final || attempt.attemptNumber >= claimed.maxAttempts);
    const retryInMs = retryDelayMs(
      deps.retrySchedule,
      attempt.attemptNumber - claimed.scheduleStart,
      verdict.kind === "retry" ? verdict.retryAfterS : undefined,
    );
    deps.metrics?.attempt(
      ok ? "delivered" : exhausted ? "failed" : "retry",
      // Either a status arrived (counted by class) or the error kind says why none did.
      attempt.errorKind ?? `${Math.floor((attempt.httpStatus ?? 0) / 100)}xx`,
      attempt.durationMs / 1000,
    );
    await deps.writer.accept(attempt, { token: claimed.claimToken, generation }, { ok, retryInMs, final });
    await trackHealth(deps, claimed, ok, attempt);
    if (ok) return "delivered";
    if (final) {
      deps.log.warn(
        { delivery: id, reason: verdict.reason },
        "delivery failed: the destination refused it for good",
      );
      return "failed";
    }
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
 * The jobs of alerts a digest carried have nothing left to do: they leave the queue, and the rate slots they
 * had reserved go back, so the digest and later alerts do not wait behind them. A job that is not removed
 * (it is running) finds its delivery gone and ends.
 */
async function settleCarried(
  deps: AttemptDeps,
  claimed: ClaimedDelivery,
  carried: { id: string; generation: number }[],
): Promise<void> {
  const jobIds = carried.filter((c) => c.id !== claimed.id).map((c) => deliveryJobId(c.id, c.generation));
  for (const jobId of jobIds) await deps.deliveryQueue.remove(jobId);
  if (claimed.ratePerSecond)
    await deps.guard.forgetRateSlots(claimed.webhookId, claimed.ratePerSecond, jobIds);
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

/** Sends one attempt through the destination's channel and describes what happened. */
async function send(deps: AttemptDeps, claimed: ClaimedDelivery): Promise<Sent & { attempt: AttemptRecord }> {
  const startedAt = new Date();
  const sent = await channelOf(claimed.kind).send(deps, claimed, startedAt);
  const attempt: AttemptRecord = {
    deliveryId: claimed.id,
    attemptNumber: claimed.attemptNumber,
    startedAt,
    durationMs: sent.durationMs,
    httpStatus: sent.status,
    errorKind: sent.errorKind,
    errorMessage: sent.errorMessage,
    responseExcerpt: sent.responseExcerpt,
  };
  deps.log.debug(
    {
      delivery: claimed.id,
      webhook: claimed.webhookId,
      attempt: attempt.attemptNumber,
      status: attempt.httpStatus,
      error: attempt.errorKind,
      ms: attempt.durationMs,
    },
    "delivery attempt",
  );
  return { ...sent, attempt };
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
