import { and, asc, eq, inArray, isNull, notInArray, type SQL, type SQLWrapper, sql } from "drizzle-orm";
import { effectiveRate } from "../channels/index.ts";
import type { Executor } from "../db/client.ts";
import {
  type AuthType,
  type DestinationKind,
  deliveries,
  type HoldReason,
  type SignatureScheme,
  webhooks,
} from "../db/schema.ts";
import { notDeleted } from "../destinations/store.ts";
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

/**
 * Milliseconds from the database's `now()` until the row is due (0 when due). Due times are kept and compared
 * on the database clock only; a worker turns this into a delay on its own clock, so no two clocks are compared.
 */
export const dueInMs = sql<number>`greatest(0, ceil(extract(epoch from (${deliveries.nextAttemptAt} - now())) * 1000))::int`;

/** The columns of a {@link QueuedRef}, for `returning` and `select`. */
export const queuedRefColumns = {
  id: deliveries.id,
  webhookId: deliveries.webhookId,
  generation: deliveries.generation,
  delayMs: dueInMs,
};

/**
 * Where a walk through one destination's rows stands: `created_at` as Postgres prints it, `|`, the id. Batched
 * statements walk the destination's `(webhook_id, created_at, id)` index in that order from here, so rows an
 * earlier batch changed (whose index entries may linger until vacuum) are never scanned again.
 */
export type WalkCursor = string;

/** The column a batch returns for {@link WalkCursor}. */
export const walkCursor = sql<string>`${deliveries.createdAt}::text || '|' || ${deliveries.id}`;

/** Rows after `after` in the walk order (created_at, id); none when `after` is undefined. */
export function walkAfter(after: WalkCursor | undefined): SQL | undefined {
  if (after === undefined) return undefined;
  const bar = after.lastIndexOf("|");
  return sql`(${deliveries.createdAt}, ${deliveries.id}) > (${after.slice(0, bar)}::timestamptz, ${after.slice(bar + 1)})`;
}

/** A delivery row as the queue needs it. */
export interface QueuedRef {
  id: string;
  /** The destination, so a worker can check its in-flight cap before touching Postgres. */
  webhookId: string;
  generation: number;
  /** How long until it is due, by the database clock, in ms. */
  delayMs: number;
}

/**
 * The idempotency keys of `items` that may still be created. An item of a stored record is created once
 * for as long as the record is kept: its key's hash goes into `alert_keys`, and a key already there (an
 * alert made before, whose delivery row retention may have deleted since) is left out. Items without a
 * stored record (test and operational events) are all kept; the deliveries' unique key dedupes those.
 */
async function claimAlertKeys(db: Executor, items: NewDelivery[]): Promise<Set<string>> {
  const keep = new Set(items.map((i) => i.idempotencyKey));
  const ofRecords = items.filter((i) => i.recordId !== undefined);
  if (ofRecords.length === 0) return keep;
  const values = sql.join(
    ofRecords.map((i) => sql`(${i.idempotencyKey}, ${i.recordId as string})`),
    sql`, `,
  );
  const rows = await db.execute<{ key: string; fresh: boolean }>(sql`
    with wanted(key, record_id) as (values ${values}),
    stored as (select w.key, w.record_id from wanted w where exists (select 1 from records r where r.id = w.record_id)),
    inserted as (
      insert into alert_keys (key_hash, record_id)
      select sha256(convert_to(key, 'UTF8')), record_id from stored
      on conflict do nothing
      returning key_hash)
    select s.key, exists (select 1 from inserted i where i.key_hash = sha256(convert_to(s.key, 'UTF8'))) as fresh
    from stored s`);
  for (const r of rows) if (!r.fresh) keep.delete(r.key);
  return keep;
}

/**
 * Inserts deliveries, skipping any whose idempotency key exists (the same alert is never queued twice) and,
 * for stored records, any alert created before even if its delivery row has since been pruned. Deliveries
 * to a disabled destination are created `held`. Returns the rows created as `pending`.
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
        // A destination being deleted gets nothing new, not even held deliveries.
        .where(and(inArray(webhooks.id, ids), notDeleted))
    ).map((w) => [w.id, w.enabled]),
  );
  const fresh = await claimAlertKeys(db, items);
  const rows = items
    .filter((i) => enabled.has(i.webhookId) && fresh.has(i.idempotencyKey))
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
    .returning({ ...queuedRefColumns, status: deliveries.status });
  const pending = inserted
    .filter((r) => r.status === "pending")
    .map(({ id, webhookId, generation, delayMs }) => ({ id, webhookId, generation, delayMs }));
  return { pending, created: inserted.length };
}

/** Everything one attempt needs, read in the same statement that claims the delivery. */
export interface ClaimedDelivery {
  id: string;
  /** The generation claimed: jobs of two generations may ask in one batch, and only one may have it. */
  generation: number;
  orgId: string;
  webhookId: string;
  eventType: string;
  idempotencyKey: string;
  payload: string;
  /** The number of this attempt: the claim counts it, so two attempts of one delivery never share a number. */
  attemptNumber: number;
  maxAttempts: number;
  /** Attempts made before the current retry schedule began (see `schedule_start`). */
  scheduleStart: number;
  /** Names this claim; the attempt's outcome applies only while it is still the delivery's claim. */
  claimToken: string;
  kind: DestinationKind;
  /** What the kind needs beyond a URL (an email destination's recipients). */
  settings: unknown;
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
  /** The destination's rate limit in messages per second, its own or its kind's default; null means none. */
  ratePerSecond: number | null;
  /** More alerts than this waiting make a digest (channels with digests); null: the default. */
  digestAfter: number | null;
  /** The name of the automation that made an alert, while it exists, for kinds that render a message; null otherwise. */
  automationName: string | null;
  /** Start of the destination's current run of failures; null while healthy. */
  failingSince: Date | null;
}

/**
 * Claims due deliveries for one attempt each, in one statement: `leased_until` is set `leaseMs` ahead and a
 * fresh `claim_token` names the claim, so a second job or the sweeper leaves a row alone while its attempt
 * runs, and if the worker dies the lease simply runs out. The claim also counts the attempt, so attempt
 * numbers are unique per delivery even when a lapsed claim is claimed again. The lease lives outside the
 * indexed `next_attempt_at`, so the claim is a heap-only update.
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
    wanted.map((w) => sql`(${w.id}, ${w.generation}::int, ${newId("clm")})`),
    sql`, `,
  );
  const rows = await db.execute<Record<string, unknown>>(sql`
    update deliveries d set leased_until = now() + make_interval(secs => ${leaseMs / 1000}),
      claim_token = c.token, attempt_count = d.attempt_count + 1
    from webhooks w, (values ${values}) as c(id, generation, token)
    where d.id = c.id and d.generation = c.generation and d.status = 'pending'
      and d.attempt_count < d.max_attempts
      -- A little early is fine (the job's own timer and the commit of its due time race by milliseconds);
      -- more is not: a worker whose clock runs ahead may wake a job early, and then it waits again.
      and d.next_attempt_at <= now() + interval '100 milliseconds'
      and (d.leased_until is null or d.leased_until <= now())
      and w.id = d.webhook_id and w.enabled
    returning d.id, d.generation, d.org_id, d.webhook_id, d.event_type, d.idempotency_key, d.payload, d.attempt_count,
      d.max_attempts, d.schedule_start, d.claim_token, w.kind, w.settings, w.url, w.auth_type, w.auth_header_name,
      w.credential_sealed, w.signing_secret_sealed, w.signature_scheme, w.ed25519_secret_key_sealed,
      w.max_in_flight, w.rate_limit_per_second, w.digest_after, w.failing_since,
      -- Only channels that render a message show the automation's name; a webhook sends the payload as it is.
      case when w.kind <> 'webhook' then (select a.name from automations a where a.id = d.automation_id) end
        as automation_name,
      case when w.previous_secret_expires_at > now() then w.previous_signing_secret_sealed end
        as previous_signing_secret_sealed`);
  const claimed = new Map<string, ClaimedDelivery>();
  for (const r of rows) {
    claimed.set(r.id as string, {
      id: r.id as string,
      generation: r.generation as number,
      orgId: r.org_id as string,
      webhookId: r.webhook_id as string,
      eventType: r.event_type as string,
      idempotencyKey: r.idempotency_key as string,
      payload: r.payload as string,
      attemptNumber: r.attempt_count as number,
      maxAttempts: r.max_attempts as number,
      scheduleStart: r.schedule_start as number,
      claimToken: r.claim_token as string,
      kind: r.kind as DestinationKind,
      settings: r.settings,
      url: r.url as string,
      authType: r.auth_type as AuthType,
      authHeaderName: r.auth_header_name as string | null,
      credentialSealed: r.credential_sealed as string | null,
      signingSecretSealed: r.signing_secret_sealed as string,
      signatureScheme: r.signature_scheme as SignatureScheme,
      previousSigningSecretSealed: r.previous_signing_secret_sealed as string | null,
      ed25519SecretKeySealed: r.ed25519_secret_key_sealed as string | null,
      maxInFlight: r.max_in_flight as number | null,
      ratePerSecond: effectiveRate(
        r.kind as DestinationKind,
        r.rate_limit_per_second === null ? null : Number(r.rate_limit_per_second),
      ),
      automationName: r.automation_name as string | null,
      digestAfter: r.digest_after as number | null,
      failingSince: r.failing_since === null ? null : new Date(r.failing_since as string | Date),
    });
  }
  return claimed;
}

/**
 * Gives a claim back without an attempt: the attempt count it took is returned and the lease cleared, and
 * with `hold` the delivery is parked as `held` for that reason (a secret that does not open is the
 * operator's to fix, not the receiver's). Only while `claimToken` is still the delivery's claim.
 */
export async function unclaim(
  db: Executor,
  id: string,
  claimToken: string,
  hold?: { reason: HoldReason; error: string },
): Promise<void> {
  await db
    .update(deliveries)
    .set({
      attemptCount: sql`${deliveries.attemptCount} - 1`,
      leasedUntil: null,
      claimToken: null,
      ...(hold ? { status: "held" as const, holdReason: hold.reason, lastError: hold.error } : {}),
    })
    .where(and(eq(deliveries.id, id), eq(deliveries.claimToken, claimToken)));
}

/** Why a delivery could not be claimed, so the worker knows whether to wait, hold or drop the job. */
export type Unclaimable = { kind: "gone" } | { kind: "wait"; delayMs: number } | { kind: "held" };

/**
 * How long a job whose delivery is leased waits before looking again, in ms. A lease normally ends within
 * milliseconds of its attempt (when the outcome commits); waiting out the whole 30 s lease would delay a
 * manual retry or a woken job for nothing, and only a dead worker's lease runs its full length.
 */
export const LEASED_RECHECK_MS = 1000;

export async function whyUnclaimable(db: Executor, id: string, generation: number): Promise<Unclaimable> {
  const [row] = await db
    .select({
      status: deliveries.status,
      generation: deliveries.generation,
      attemptCount: deliveries.attemptCount,
      maxAttempts: deliveries.maxAttempts,
      dueInMs,
      leasedForMs: sql<
        number | null
      >`ceil(extract(epoch from (${deliveries.leasedUntil} - now())) * 1000)::int`,
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
  const leased = row.leasedForMs !== null && row.leasedForMs > 0;
  if (!leased && row.attemptCount >= row.maxAttempts) {
    // Its last attempt was claimed but its outcome never came: the worker died with it in flight. The
    // receiver may never have seen it, so it is attempted once more rather than left pending for ever.
    await db
      .update(deliveries)
      .set({ maxAttempts: sql`${deliveries.attemptCount} + 1` })
      .where(
        and(eq(deliveries.id, id), eq(deliveries.generation, generation), eq(deliveries.status, "pending")),
      );
    return { kind: "wait", delayMs: 0 };
  }
  const leaseWait = leased ? Math.min(row.leasedForMs as number, LEASED_RECHECK_MS) : 0;
  return { kind: "wait", delayMs: Math.max(row.dueInMs, leaseWait) };
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

/** A pending row as the sweeper pages through them: a {@link QueuedRef} and where the next page starts. */
export interface PendingRef extends QueuedRef {
  /** `<next_attempt_at as Postgres prints it>|<id>`: exact to the microsecond, unlike a JS Date. */
  cursor: string;
}

/**
 * Pending deliveries in due-time order after `after` (a {@link PendingRef} cursor, or "" to start), on the
 * partial index of pending rows, so a page costs what it returns however many rows are pending. With
 * `overdueMs`, only those due more than that long ago by the database clock; `skipWebhooks` leaves out
 * destinations whose work is known to be held back.
 */
export async function listPending(
  db: Executor,
  after: string,
  limit: number,
  overdueMs?: number,
  skipWebhooks: string[] = [],
): Promise<PendingRef[]> {
  const bar = after.indexOf("|");
  const from =
    bar < 0
      ? undefined
      : sql`(${deliveries.nextAttemptAt}, ${deliveries.id}) > (${after.slice(0, bar)}::timestamptz, ${after.slice(bar + 1)})`;
  return db
    .select({
      ...queuedRefColumns,
      cursor: sql<string>`${deliveries.nextAttemptAt}::text || '|' || ${deliveries.id}`,
    })
    .from(deliveries)
    .where(
      and(
        eq(deliveries.status, "pending"),
        from,
        overdueMs === undefined
          ? undefined
          : sql`${deliveries.nextAttemptAt} < now() - make_interval(secs => ${overdueMs / 1000})`,
        skipWebhooks.length > 0 ? notInArray(deliveries.webhookId, skipWebhooks) : undefined,
        // A leased row has an attempt running (or a dead worker's claim that has yet to lapse).
        sql`(${deliveries.leasedUntil} is null or ${deliveries.leasedUntil} < now())`,
      ),
    )
    .orderBy(asc(deliveries.nextAttemptAt), asc(deliveries.id))
    .limit(limit);
}

/** How many held rows one release statement turns back into pending ones. */
export const RELEASE_BATCH = 500;

/**
 * Turns up to `limit` `held` deliveries of enabled destinations (held because their destination was
 * disabled) back into pending ones, due now: what an admin's enable releases, and what the sweeper catches if
 * an insert raced with an enable. Each gets a new generation, so it is queued as a new job whatever old
 * delayed job of it Redis still has. `webhookId` limits it to one destination. Callers repeat it until it
 * returns fewer than `limit` rows, queueing each batch as it comes.
 */
export async function releaseHeld(
  db: Executor,
  webhookId?: string,
  limit = RELEASE_BATCH,
  after?: WalkCursor,
): Promise<(QueuedRef & { cursor: WalkCursor })[]> {
  const batch = db
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(
      and(
        eq(deliveries.status, "held"),
        isNull(deliveries.holdReason),
        webhookId ? eq(deliveries.webhookId, webhookId) : undefined,
        sql`${deliveries.webhookId} in (select id from webhooks where enabled)`,
        walkAfter(after),
      ),
    )
    .orderBy(asc(deliveries.createdAt), asc(deliveries.id))
    .limit(limit)
    .for("update", { skipLocked: true });
  const rows = await db
    .update(deliveries)
    .set({ status: "pending", nextAttemptAt: sql`now()`, generation: sql`${deliveries.generation} + 1` })
    .where(inBatch(batch))
    .returning({ ...queuedRefColumns, cursor: walkCursor });
  return rows.sort((a, b) => (a.cursor < b.cursor ? -1 : 1));
}

/**
 * `id` is one of the batch a sub-select picked (and locked). Written as `= any(array(…))` so the batch is
 * picked once and its rows are found by primary key: with `in (…)` the planner may join the batch against a
 * scan of the whole table, which at millions of rows turned one batch of 500 into minutes. Use it as the
 * only condition: the sub-select's lock already guarantees its own conditions, and another condition on an
 * indexed column invites a scan of that index instead of the primary key (with stale statistics, one that
 * took 2 s a batch).
 */
export function inBatch(batch: SQLWrapper): SQL {
  return sql`${deliveries.id} = any(array(${batch}))`;
}

/**
 * Releases up to `limit` deliveries held because a secret did not open, whose destination's secrets are
 * sealed under a key this process now has (`keyIds`): once the right SECRETS_KEY is configured they go out
 * by themselves, with the attempt the failed opening never spent.
 */
export async function releaseSecretHeld(
  db: Executor,
  keyIds: string[],
  limit = RELEASE_BATCH,
): Promise<QueuedRef[]> {
  const keyId = (column: string) => sql`split_part(${sql.raw(column)}, '.', 2)`;
  const openable = (column: string) =>
    sql`(${sql.raw(column)} is null or ${keyId(column)} in (${sql.join(
      keyIds.map((k) => sql`${k}`),
      sql`, `,
    )}))`;
  const batch = sql`select d.id from deliveries d join webhooks w on w.id = d.webhook_id
    where d.status = 'held' and d.hold_reason = 'secret_unreadable' and w.enabled
      and ${openable("w.signing_secret_sealed")} and ${openable("w.credential_sealed")}
      and ${openable("w.ed25519_secret_key_sealed")}
    limit ${limit} for update of d skip locked`;
  return db
    .update(deliveries)
    .set({
      status: "pending",
      holdReason: null,
      nextAttemptAt: sql`now()`,
      generation: sql`${deliveries.generation} + 1`,
    })
    .where(inBatch(batch))
    .returning(queuedRefColumns);
}

/** How many deliveries wait for a secret that does not open, and the key ids their secrets need. */
export async function secretHeldSummary(db: Executor): Promise<{ count: number; keyIds: string[] }> {
  const rows = await db.execute<{ key_id: string; n: number }>(sql`
    select split_part(w.signing_secret_sealed, '.', 2) as key_id, count(*)::int as n
    from deliveries d join webhooks w on w.id = d.webhook_id
    where d.status = 'held' and d.hold_reason = 'secret_unreadable'
    group by 1`);
  return {
    count: rows.reduce((n, r) => n + Number(r.n), 0),
    keyIds: rows.map((r) => r.key_id),
  };
}

/**
 * Makes a delivery due now for one more attempt, whatever its status, scoped to `webhookId`. A new
 * generation, so any job still queued for it does nothing. For a pending delivery the retry is one attempt
 * more, on top of what is left of its schedule (never a cut of it); a delivered or failed one gets one
 * attempt. An attempt in flight keeps its lease: the new job waits for it to end, so the two never run side
 * by side, and its outcome still counts.
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
      maxAttempts: sql`case when ${deliveries.status} in ('pending', 'held')
        then greatest(${deliveries.maxAttempts}, ${deliveries.attemptCount}) + 1
        else ${deliveries.attemptCount} + 1 end`,
    })
    .where(and(eq(deliveries.id, deliveryId), eq(deliveries.webhookId, webhookId)))
    .returning(queuedRefColumns);
  return row;
}
