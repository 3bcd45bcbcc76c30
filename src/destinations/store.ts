import { and, asc, eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import {
  type AuthType,
  automationWebhooks,
  deliveries,
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
  createdAt: webhooks.createdAt,
  updatedAt: webhooks.updatedAt,
};

/** True for a destination that is not being deleted (see {@link deleteWebhook}). */
export const notDeleted = sql`not exists (select 1 from webhook_deletions x where x.webhook_id = ${webhooks.id})`;

/** An organization's destinations, oldest first. */
export async function listWebhooks(db: Executor, orgId: string): Promise<WebhookView[]> {
  return db
    .select(viewColumns)
    .from(webhooks)
    .where(and(eq(webhooks.orgId, orgId), notDeleted))
    .orderBy(asc(webhooks.createdAt), asc(webhooks.id));
}

/**
 * One destination of the organization, or `undefined` (also for another organization's id).
 * `forUpdate` locks the row until the caller's transaction ends, so concurrent edits apply one after the other.
 */
export async function getWebhook(
  db: Executor,
  orgId: string,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<WebhookView | undefined> {
  const query = db
    .select(viewColumns)
    .from(webhooks)
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId), notDeleted));
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
export async function deleteWebhook(db: Executor, orgId: string, id: string): Promise<boolean> {
  const rows = await db
    .update(webhooks)
    .set({ enabled: false, updatedAt: sql`now()` })
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId), notDeleted))
    .returning({ id: webhooks.id });
  if (rows.length === 0) return false;
  await db.insert(webhookDeletions).values({ webhookId: id }).onConflictDoNothing();
  await db.delete(automationWebhooks).where(eq(automationWebhooks.webhookId, id));
  return true;
}

/**
 * Turns up to `limit` of a disabled destination's `pending` deliveries into `held`, so the history says
 * why they wait (none goes out meanwhile either way: a disabled destination's deliveries are never
 * claimed, and an attempt already in flight finishes). Callers repeat it until it returns fewer than
 * `limit`. Returns how many were held.
 */
export async function holdPendingDeliveries(db: Executor, webhookId: string, limit = 1000): Promise<number> {
  const batch = db
    .select({ id: deliveries.id })
    .from(deliveries)
    .where(and(eq(deliveries.webhookId, webhookId), eq(deliveries.status, "pending")))
    .limit(limit)
    // Waits for a row an outcome is being written to rather than skipping it and leaving it pending.
    .for("update");
  const rows = await db
    .update(deliveries)
    .set({ status: "held" })
    .where(
      and(
        sql`${deliveries.id} = any(array(${batch}))`,
        eq(deliveries.status, "pending"),
        sql`not exists (
      select 1 from webhooks w where w.id = ${deliveries.webhookId} and w.enabled)`,
      ),
    )
    .returning({ id: deliveries.id });
  return rows.length;
}

/** Holds every pending delivery of a disabled destination, {@link holdPendingDeliveries} a batch at a time. */
export async function holdAllPending(db: Executor, webhookId: string): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await holdPendingDeliveries(db, webhookId);
    total += n;
    if (n < 1000) return total;
  }
}
