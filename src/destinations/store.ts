import { and, eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { keysetPage, type Page, type PageOf } from "../db/paging.ts";
import {
  type AuthType,
  automationWebhooks,
  type DestinationKind,
  type SignatureScheme,
  webhookDeletions,
  webhooks,
} from "../db/schema.ts";
import { newId, newToken } from "../ids.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";

/** A destination as given by an admin; the credential is plaintext here and sealed before it is stored. */
export interface WebhookInput {
  url: string;
  events: string[];
  enabled?: boolean;
  description?: string | null;
  auth?: { type: AuthType; credential?: string | null; headerName?: string | null };
  signatureScheme?: SignatureScheme;
  /** Most attempts per second across all workers (fractional allowed); null or absent: no limit. */
  rateLimitPerSecond?: number | null;
}

/** A new signing secret: `whs_` and 32 random bytes in base64url. */
export function newSigningSecret(): string {
  return newToken("whs_");
}

/** Creates a destination; returns its id and the signing secret, which is never readable again. */
export async function createWebhook(
  db: Executor,
  box: SecretBox,
  orgId: string,
  input: WebhookInput,
): Promise<{ id: string; secret: string }> {
  const id = newId("whe");
  const secret = newSigningSecret();
  const auth = input.auth ?? { type: "none" };
  await db.insert(webhooks).values({
    id,
    orgId,
    url: input.url,
    events: input.events,
    enabled: input.enabled ?? true,
    description: input.description ?? null,
    authType: auth.type,
    authHeaderName: auth.type === "custom_header" ? (auth.headerName ?? null) : null,
    credentialSealed:
      auth.type !== "none" && auth.credential ? box.seal(auth.credential, sealContext.credential(id)) : null,
    signingSecretSealed: box.seal(secret, sealContext.signingSecret(id)),
    signatureScheme: input.signatureScheme ?? "standard",
    rateLimitPerSecond: input.rateLimitPerSecond ?? null,
  });
  return { id, secret };
}

/** A destination as the admin API shows it: no sealed column, only whether a credential is set. */
export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  description: string | null;
  authType: AuthType;
  authHeaderName: string | null;
  credentialSet: boolean;
  disabledReason: string | null;
  failingSince: Date | null;
  rateLimitPerSecond: number | null;
  createdAt: Date;
  updatedAt: Date;
}

const viewColumns = {
  id: webhooks.id,
  url: webhooks.url,
  events: webhooks.events,
  enabled: webhooks.enabled,
  description: webhooks.description,
  authType: webhooks.authType,
  authHeaderName: webhooks.authHeaderName,
  credentialSet: sql<boolean>`${webhooks.credentialSealed} is not null`,
  disabledReason: webhooks.disabledReason,
  failingSince: webhooks.failingSince,
  rateLimitPerSecond: webhooks.rateLimitPerSecond,
  createdAt: webhooks.createdAt,
  updatedAt: webhooks.updatedAt,
};

/** True for a destination that is not being deleted (see {@link deleteWebhook}). */
export const notDeleted = sql`not exists (select 1 from webhook_deletions x where x.webhook_id = ${webhooks.id})`;

/** An organization's destinations, oldest first. */
export async function listWebhooks(
  db: Executor,
  orgId: string,
  pageOf: PageOf,
  perPage: number,
  kind: DestinationKind = "webhook",
): Promise<Page<WebhookView>> {
  return keysetPage(
    db,
    {
      table: webhooks,
      columns: viewColumns,
      createdAt: webhooks.createdAt,
      id: webhooks.id,
      where: and(eq(webhooks.orgId, orgId), eq(webhooks.kind, kind), notDeleted),
      newestFirst: false,
    },
    pageOf,
    perPage,
  );
}

/**
 * One destination of the organization of `kind` (default webhook), or `undefined` (also for another
 * organization's id or another kind's). `forUpdate` locks the row until the caller's transaction ends, so
 * concurrent edits apply one after the other.
 */
export async function getWebhook(
  db: Executor,
  orgId: string,
  id: string,
  options: { forUpdate?: boolean; kind?: DestinationKind } = {},
): Promise<WebhookView | undefined> {
  const query = db
    .select(viewColumns)
    .from(webhooks)
    .where(
      and(
        eq(webhooks.id, id),
        eq(webhooks.orgId, orgId),
        eq(webhooks.kind, options.kind ?? "webhook"),
        notDeleted,
      ),
    );
  const [row] = options.forUpdate ? await query.for("update") : await query;
  return row;
}

/**
 * What an edit changes; absent fields stay as they are. In `auth`, `credential: undefined` keeps the stored
 * credential and `null` clears it; `headerName` is stored only for `custom_header`.
 */
export interface WebhookChanges {
  url?: string;
  events?: string[];
  enabled?: boolean;
  description?: string | null;
  auth?: { type: AuthType; headerName: string | null; credential?: string | null };
  rateLimitPerSecond?: number | null;
}

/** Applies `changes` to one destination of the organization; returns it as it is now, or `undefined`. */
export async function updateWebhook(
  db: Executor,
  box: SecretBox,
  orgId: string,
  id: string,
  changes: WebhookChanges,
): Promise<WebhookView | undefined> {
  const auth = changes.auth;
  const [row] = await db
    .update(webhooks)
    .set({
      url: changes.url,
      events: changes.events,
      enabled: changes.enabled,
      description: changes.description,
      rateLimitPerSecond: changes.rateLimitPerSecond,
      // Re-enabling by hand starts the destination's health over: one that was failing gets the whole
      // disable period again from now, and stays failing until an attempt succeeds, which then announces
      // `destination.recovered` to the subscribers that were told it was failing or disabled.
      ...(changes.enabled === true
        ? {
            disabledReason: null,
            failingSince: sql`case when ${webhooks.failingSince} is null then null else now() end`,
          }
        : {}),
      ...(auth
        ? {
            authType: auth.type,
            authHeaderName: auth.type === "custom_header" ? auth.headerName : null,
            ...(auth.type === "none"
              ? { credentialSealed: null }
              : auth.credential !== undefined
                ? {
                    credentialSealed: auth.credential
                      ? box.seal(auth.credential, sealContext.credential(id))
                      : null,
                  }
                : {}),
          }
        : {}),
      updatedAt: new Date(),
    })
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId)))
    .returning(viewColumns);
  return row;
}

/**
 * Deletes a destination, in bounded statements whatever its backlog: at once it is disabled (no attempt is
 * claimed for it from here on), unlinked from its automations, recorded in `webhook_deletions` and so
 * invisible to the API; the pruner then deletes its deliveries and attempts in batches, and the destination
 * itself (see purgeDeletedWebhooks). Returns whether the organization had such a destination.
 */
export async function deleteWebhook(
  db: Executor,
  orgId: string,
  id: string,
  kind: DestinationKind = "webhook",
): Promise<boolean> {
  const rows = await db
    .update(webhooks)
    .set({ enabled: false, updatedAt: sql`now()` })
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId), eq(webhooks.kind, kind), notDeleted))
    .returning({ id: webhooks.id });
  if (rows.length === 0) return false;
  await db.insert(webhookDeletions).values({ webhookId: id }).onConflictDoNothing();
  await db.delete(automationWebhooks).where(eq(automationWebhooks.webhookId, id));
  return true;
}

/**
 * Turns up to `limit` of a disabled destination's `pending` deliveries into `held`, so the history says
 * why they wait (none goes out meanwhile either way: a disabled destination's deliveries are never
 * claimed, and an attempt already in flight finishes). It walks the destination's `(webhook_id,
 * created_at)` index from `after` (`created_at|id` of the last row looked at), so a batch never rescans
 * what earlier ones passed. Returns how many it held and where it stopped (undefined at the end).
 */
export async function holdPendingDeliveries(
  db: Executor,
  webhookId: string,
  limit = 1000,
  after?: string,
): Promise<{ held: number; next: string | undefined }> {
  const bar = after?.lastIndexOf("|") ?? -1;
  const from =
    after === undefined
      ? sql`true`
      : sql`(created_at, id) > (${after.slice(0, bar)}::timestamptz, ${after.slice(bar + 1)})`;
  // Looks at up to 10 × limit rows of the destination (most may be finished), holding the pending ones.
  const rows = await db.execute<{ cursor: string; held: boolean }>(sql`
    with scanned as (
      select id, status, created_at::text || '|' || id as cursor from deliveries
      where webhook_id = ${webhookId} and ${from}
      order by created_at, id limit ${limit * 10}),
    held as (
      update deliveries d set status = 'held'
      -- Found by primary key. The re-check of the status is written so that no partial index on status
      -- matches it: with statistics from before a large backlog, the planner would scan such an index instead.
      where d.id = any(array(select id from scanned where status = 'pending')) and (d.status || '') = 'pending'
        and not exists (select 1 from webhooks w where w.id = d.webhook_id and w.enabled)
      returning d.id)
    select (select max(cursor) from scanned) as cursor, (select count(*) from held)::int as held`);
  const row = rows[0] as unknown as { cursor: string | null; held: number } | undefined;
  const scannedAll = row?.cursor === null || row?.cursor === undefined;
  return { held: row?.held ?? 0, next: scannedAll ? undefined : (row?.cursor as string) };
}

/** Holds every pending delivery of a disabled destination, {@link holdPendingDeliveries} a batch at a time. */
export async function holdAllPending(db: Executor, webhookId: string): Promise<number> {
  let total = 0;
  let after: string | undefined;
  for (;;) {
    const { held, next } = await holdPendingDeliveries(db, webhookId, 1000, after);
    total += held;
    if (next === undefined) return total;
    after = next;
  }
}
