import { DelayedError, type Job } from "bullmq";
import type { Db } from "../db/client.ts";
import { OutboundError } from "../errors.ts";
import type { DeliveryJob } from "../jobs.ts";
import type { Logger } from "../log.ts";
import { ATTEMPT_TIMEOUT_MS, type OutboundClient } from "../outbound/http.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";
import type { SigningKeys } from "../signing/headers.ts";
import { type AttemptRecord, claimDelivery, recordAttempt, whyUnclaimable } from "./outbox.ts";
import { deliveryHeaders, maskSecrets } from "./request.ts";
import { parseRetryAfter, retryDelayMs } from "./schedule.ts";

/** How far a claim pushes the next attempt time: well past one attempt, so only a dead worker's claim lapses. */
export const CLAIM_LEASE_MS = 30_000;
/** Bytes of response body stored with an attempt. */
export const EXCERPT_BYTES = 2048;

export interface AttemptDeps {
  db: Db;
  box: SecretBox;
  http: OutboundClient;
  log: Logger;
  /** Seconds between attempts; see Config.retrySchedule. */
  retrySchedule: readonly number[];
}

/**
 * Runs one attempt of the delivery a job points at. Returns when the delivery is finished (delivered,
 * failed for good, superseded, deleted or held); when it must be tried again later, moves the job to
 * BullMQ's delayed set and throws DelayedError, which BullMQ expects for that move.
 */
export async function runDeliveryJob(
  deps: AttemptDeps,
  job: Job<DeliveryJob>,
  token: string | undefined,
): Promise<string> {
  const { d: id, g: generation } = job.data;
  const claimed = await claimDelivery(deps.db, id, generation, CLAIM_LEASE_MS);
  if (!claimed) {
    const why = await whyUnclaimable(deps.db, id, generation);
    if (why.kind !== "wait") return why.kind;
    await job.moveToDelayed(why.until.getTime(), token);
    throw new DelayedError();
  }

  const wh = claimed.webhookId;
  const open = (sealed: string | null, context: string) => (sealed ? deps.box.open(sealed, context) : null);
  const credential = open(claimed.credentialSealed, sealContext.credential(wh));
  const signing: SigningKeys = {
    scheme: claimed.signatureScheme,
    secret: deps.box.open(claimed.signingSecretSealed, sealContext.signingSecret(wh)),
    previousSecret: open(claimed.previousSigningSecretSealed, sealContext.previousSigningSecret(wh)),
    ed25519SecretKey: open(claimed.ed25519SecretKeySealed, sealContext.ed25519SecretKey(wh)),
  };
  // Nothing secret may come back through the history: an echoing receiver repeats what it was sent.
  const secrets = [credential, signing.secret, signing.previousSecret, signing.ed25519SecretKey];
  const startedAt = new Date();
  const headers = deliveryHeaders(claimed, { credential, signing }, Math.floor(startedAt.getTime() / 1000));

  const attemptNumber = claimed.attemptCount + 1;
  const attempt: AttemptRecord = {
    deliveryId: id,
    attemptNumber,
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

  const ok = attempt.httpStatus !== null && attempt.httpStatus >= 200 && attempt.httpStatus < 300;
  deps.log.debug(
    {
      delivery: id,
      webhook: claimed.webhookId,
      attempt: attemptNumber,
      status: attempt.httpStatus,
      error: attempt.errorKind,
      ms: attempt.durationMs,
    },
    "delivery attempt",
  );
  if (ok) {
    await recordAttempt(deps.db, attempt, generation, { status: "delivered" });
    return "delivered";
  }
  if (attemptNumber >= claimed.maxAttempts) {
    await recordAttempt(deps.db, attempt, generation, { status: "failed" });
    deps.log.warn({ delivery: id, attempts: attemptNumber }, "delivery failed: attempts exhausted");
    return "failed";
  }
  const retryAt = new Date(Date.now() + retryDelayMs(deps.retrySchedule, attemptNumber, retryAfterS));
  await recordAttempt(deps.db, attempt, generation, { status: "pending", retryAt });
  await job.moveToDelayed(retryAt.getTime(), token);
  throw new DelayedError();
}
