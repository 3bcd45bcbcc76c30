import { and, asc, eq, gt, inArray, lt, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { type AuthType, deliveries, type SignatureScheme, webhooks } from "../db/schema.ts";
import { newId } from "../ids.ts";

/** What a caller asks to deliver; the body is frozen as given. */
export interface NewDelivery {
  orgId: string;
  webhookId: string;
  eventType: string;
  idempotencyKey: string;
  /** The exact request body. */
  payload: string;
  automationId?: string;
  recordId?: string;
}

/** The columns of a {@link QueuedRef}, for `returning` and `select`. */
export const queuedRefColumns = {
  id: deliveries.id,
  webhookId: deliveries.webhookId,
  generation: deliveries.generation,
  nextAttemptAt: deliveries.nextAttemptAt,
};

/** A delivery row as the queue needs it. */
export interface QueuedRef {
  id: string;
  /** The destination, so a worker can check its in-flight cap before touching Postgres. */
  webhookId: string;
  generation: number;
  nextAttemptAt: Date;
}

/**
 * Inserts deliveries, skipping any whose idempotency key exists (the same alert is never queued twice).
 * Deliveries to a disabled destination are created `held`. Returns the rows created as `pending`.
 */
export async function insertDeliveries(
  db: Executor,
  items: NewDelivery[],
  maxAttempts: number,
): Promise<{ pending: QueuedRef[]; created: number }> {
  if (items.length === 0) return { pending: [], created: 0 };
  const ids = [...new Set(items.map((i) => i.webhookId))];
  const enabled = new Map(
    (
      await db
        .select({ id: webhooks.id, enabled: webhooks.enabled })
        .from(webhooks)
        .where(inArray(webhooks.id, ids))
    ).map((w) => [w.id, w.enabled]),
  );
  const rows = items
    .filter((i) => enabled.has(i.webhookId))
    .map((i) => ({
      id: newId("del"),
      orgId: i.orgId,
      webhookId: i.webhookId,
      automationId: i.automationId ?? null,
      recordId: i.recordId ?? null,
      eventType: i.eventType,
      idempotencyKey: i.idempotencyKey,
      payload: i.payload,
      status: enabled.get(i.webhookId) ? ("pending" as const) : ("held" as const),
      maxAttempts,
    }));
  if (rows.length === 0) return { pending: [], created: 0 };
  const inserted = await db
    .insert(deliveries)
    .values(rows)
    .onConflictDoNothing({ target: deliveries.idempotencyKey })
    .returning({
      id: deliveries.id,
      webhookId: deliveries.webhookId,
      generation: deliveries.generation,
      nextAttemptAt: deliveries.nextAttemptAt,
      status: deliveries.status,
    });
  const pending = inserted
    .filter((r) => r.status === "pending")
    .map(({ id, webhookId, generation, nextAttemptAt }) => ({ id, webhookId, generation, nextAttemptAt }));
  return { pending, created: inserted.length };
}

/** Everything one attempt needs, read in the same statement that claims the delivery. */
export interface ClaimedDelivery {
  id: string;
  orgId: string;
  webhookId: string;
  eventType: string;
  idempotencyKey: string;
  payload: string;
  attemptCount: number;
  maxAttempts: number;
  url: string;
  authType: AuthType;
  authHeaderName: string | null;
  credentialSealed: string | null;
  signingSecretSealed: string;
  signatureScheme: SignatureScheme;
  /** The rotated-out secret, only while its grace period lasts (judged by the database clock). */
  previousSigningSecretSealed: string | null;
  ed25519SecretKeySealed: string | null;
  /** The destination's own in-flight cap; null means the configured default. */
  maxInFlight: number | null;
  /** Start of the destination's current run of failures; null while healthy. */
  failingSince: Date | null;
}

/**
 * Claims due deliveries for one attempt each, in one statement: `leased_until` is set `leaseMs` ahead, so a
 * second job or the sweeper leaves a row alone while its attempt runs; if the worker dies, the lease simply
 * runs out. The lease lives outside the indexed `next_attempt_at`, so the claim is a heap-only update.
 * Returns the claimed rows by id; a delivery that is not due, not pending, superseded, leased or whose
 * destination is disabled is absent.
 */
export async function claimDeliveries(
  db: Executor,
  wanted: { id: string; generation: number }[],
  leaseMs: number,
): Promise<Map<string, ClaimedDelivery>> {
  if (wanted.length === 0) return new Map();
  const values = sql.join(
    wanted.map((w) => sql`(${w.id}, ${w.generation}::int)`),
    sql`, `,
  );
  const rows = await db.execute<Record<string, unknown>>(sql`
    update deliveries d set leased_until = now() + make_interval(secs => ${leaseMs / 1000})
    from webhooks w, (values ${values}) as c(id, generation)
    where d.id = c.id and d.generation = c.generation and d.status = 'pending'
      and d.next_attempt_at <= now() + interval '1 second'
      and (d.leased_until is null or d.leased_until <= now())
      and w.id = d.webhook_id and w.enabled
    returning d.id, d.org_id, d.webhook_id, d.event_type, d.idempotency_key, d.payload, d.attempt_count,
      d.max_attempts, w.url, w.auth_type, w.auth_header_name, w.credential_sealed, w.signing_secret_sealed,
      w.signature_scheme, w.ed25519_secret_key_sealed, w.max_in_flight, w.failing_since,
      case when w.previous_secret_expires_at > now() then w.previous_signing_secret_sealed end
        as previous_signing_secret_sealed`);
  const claimed = new Map<string, ClaimedDelivery>();
  for (const r of rows) {
    claimed.set(r.id as string, {
      id: r.id as string,
      orgId: r.org_id as string,
      webhookId: r.webhook_id as string,
      eventType: r.event_type as string,
      idempotencyKey: r.idempotency_key as string,
      payload: r.payload as string,
      attemptCount: r.attempt_count as number,
      maxAttempts: r.max_attempts as number,
      url: r.url as string,
      authType: r.auth_type as AuthType,
      authHeaderName: r.auth_header_name as string | null,
      credentialSealed: r.credential_sealed as string | null,
      signingSecretSealed: r.signing_secret_sealed as string,
      signatureScheme: r.signature_scheme as SignatureScheme,
      previousSigningSecretSealed: r.previous_signing_secret_sealed as string | null,
      ed25519SecretKeySealed: r.ed25519_secret_key_sealed as string | null,
      maxInFlight: r.max_in_flight as number | null,
      failingSince: r.failing_since === null ? null : new Date(r.failing_since as string | Date),
    });
  }
  return claimed;
}

/** Why a delivery could not be claimed, so the worker knows whether to wait, hold or drop the job. */
export type Unclaimable = { kind: "gone" } | { kind: "wait"; until: Date } | { kind: "held" };

export async function whyUnclaimable(db: Executor, id: string, generation: number): Promise<Unclaimable> {
  const [row] = await db
    .select({
      status: deliveries.status,
      generation: deliveries.generation,
      nextAttemptAt: deliveries.nextAttemptAt,
      leasedUntil: deliveries.leasedUntil,
      enabled: webhooks.enabled,
    })
    .from(deliveries)
    .innerJoin(webhooks, eq(webhooks.id, deliveries.webhookId))
    .where(eq(deliveries.id, id));
  if (!row || row.generation !== generation || row.status !== "pending") return { kind: "gone" };
  if (!row.enabled) {
    await db
      .update(deliveries)
      .set({ status: "held" })
      .where(and(eq(deliveries.id, id), eq(deliveries.status, "pending")));
    return { kind: "held" };
  }
  const leased = row.leasedUntil?.getTime() ?? 0;
  return { kind: "wait", until: new Date(Math.max(row.nextAttemptAt.getTime(), leased)) };
}

/** The outcome of one attempt, as stored in the history. */
export interface AttemptRecord {
  deliveryId: string;
  attemptNumber: number;
  startedAt: Date;
  durationMs: number;
  httpStatus: number | null;
  errorKind: string | null;
  errorMessage: string | null;
  responseExcerpt: string | null;
}

/** Pending deliveries in id order after `afterId`, optionally only those overdue before `dueBefore`. */
export async function listPending(
  db: Executor,
  afterId: string,
  limit: number,
  dueBefore?: Date,
): Promise<QueuedRef[]> {
  return db
    .select(queuedRefColumns)
    .from(deliveries)
    .where(
      and(
        eq(deliveries.status, "pending"),
        gt(deliveries.id, afterId),
        dueBefore ? lt(deliveries.nextAttemptAt, dueBefore) : undefined,
        // A leased row has an attempt running (or a dead worker's claim that has yet to lapse).
        sql`(${deliveries.leasedUntil} is null or ${deliveries.leasedUntil} < now())`,
      ),
    )
    .orderBy(asc(deliveries.id))
    .limit(limit);
}

/**
 * Turns `held` deliveries of enabled destinations back into due `pending` ones: what an admin's enable
 * releases, and what the sweeper catches if an insert raced with an enable. `webhookId` limits it to one.
 */
export async function releaseHeld(db: Executor, webhookId?: string): Promise<QueuedRef[]> {
  return db
    .update(deliveries)
    .set({ status: "pending", nextAttemptAt: sql`now()` })
    .where(
      and(
        eq(deliveries.status, "held"),
        webhookId ? eq(deliveries.webhookId, webhookId) : undefined,
        sql`${deliveries.webhookId} in (select id from webhooks where enabled)`,
      ),
    )
    .returning(queuedRefColumns);
}

/**
 * Makes a delivery due now for one more attempt, whatever its status: a new generation so any job still
 * queued for it does nothing, and one attempt more than it has made. Scoped to `webhookId`.
 */
export async function retryNow(
  db: Executor,
  webhookId: string,
  deliveryId: string,
): Promise<QueuedRef | undefined> {
  const [row] = await db
    .update(deliveries)
    .set({
      status: sql`case when ${deliveries.status} = 'held' then 'held' else 'pending' end`,
      nextAttemptAt: sql`now()`,
      generation: sql`${deliveries.generation} + 1`,
      maxAttempts: sql`${deliveries.attemptCount} + 1`,
      // An attempt of the old generation may still run; its outcome no longer applies, so it holds nothing.
      leasedUntil: null,
    })
    .where(and(eq(deliveries.id, deliveryId), eq(deliveries.webhookId, webhookId)))
    .returning(queuedRefColumns);
  return row;
}
