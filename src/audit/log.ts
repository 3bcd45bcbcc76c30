import { eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { keysetPage, type Page, type PageOf } from "../db/paging.ts";
import { auditEvents } from "../db/schema.ts";
import { newId } from "../ids.ts";

/** Who made a change: the organization, the admin key (null for the CLI) and the request's referenceID. */
export interface Actor {
  orgId: string;
  keyId: string | null;
  referenceId: string | null;
}

/** One change: `action` is `<target_type>.<verb>` (`webhook.updated`, `api_key.revoked`…). */
export interface Change {
  action: string;
  targetType: string;
  targetId: string;
  /** The target as the API showed it before (null when it did not exist). Secrets are left out. */
  before?: unknown;
  /** …and after (null when it is gone). */
  after?: unknown;
}

export type AuditEvent = typeof auditEvents.$inferSelect;

/**
 * Fields never written to the audit log, whatever object they appear in: signing secrets, tokens and keys
 * shown once, credentials and Slack URLs (write-only). The API's views leave them out already; this is the
 * second line, for the answers that carry them once (create, rotate).
 */
const SECRET_FIELDS = new Set([
  "secret",
  "api_key",
  "admin_api_key",
  "credential",
  "webhook_url",
  "token",
  "password",
]);

/** A copy of `value` without {@link SECRET_FIELDS}, at any depth; dates become ISO strings. */
export function withoutSecrets(value: unknown): unknown {
  if (value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(withoutSecrets);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k, v]) => !SECRET_FIELDS.has(k) && v !== undefined)
        .map(([k, v]) => [k, withoutSecrets(v)]),
    );
  }
  return value;
}

/** Writes one audit event, in the caller's transaction so it commits (or not) with the change itself. */
export async function recordChange(db: Executor, actor: Actor, change: Change): Promise<void> {
  await db.insert(auditEvents).values({
    id: newId("aud"),
    orgId: actor.orgId,
    keyId: actor.keyId,
    action: change.action,
    targetType: change.targetType,
    targetId: change.targetId,
    changes: { before: withoutSecrets(change.before), after: withoutSecrets(change.after) },
    referenceId: actor.referenceId,
  });
}

/** An organization's audit events, newest first, by keyset. */
export function listAuditEvents(
  db: Executor,
  orgId: string,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<AuditEvent>> {
  return keysetPage(
    db,
    {
      table: auditEvents,
      columns: {
        id: auditEvents.id,
        orgId: auditEvents.orgId,
        at: auditEvents.at,
        keyId: auditEvents.keyId,
        action: auditEvents.action,
        targetType: auditEvents.targetType,
        targetId: auditEvents.targetId,
        changes: auditEvents.changes,
        referenceId: auditEvents.referenceId,
      },
      createdAt: auditEvents.at,
      id: auditEvents.id,
      where: eq(auditEvents.orgId, orgId),
      newestFirst: true,
    },
    pageOf,
    perPage,
  );
}

/** Deletes up to `limit` audit events older than `retentionMs`, oldest first; returns how many. */
export async function pruneAuditEvents(db: Executor, retentionMs: number, limit: number): Promise<number> {
  const [row] = await db.execute<{ n: number }>(sql`
    with doomed as (
      select id from audit_events where at < now() - make_interval(secs => ${retentionMs / 1000})
      order by at limit ${limit}),
    gone as (delete from audit_events where id = any(array(select id from doomed)) returning 1)
    select count(*)::int as n from gone`);
  return row?.n ?? 0;
}
