import { and, asc, eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { type AuthType, deliveries, type SignatureScheme, webhooks } from "../db/schema.ts";
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

/** An organization's destinations, oldest first. */
export async function listWebhooks(db: Executor, orgId: string): Promise<WebhookView[]> {
  return db
    .select(viewColumns)
    .from(webhooks)
    .where(eq(webhooks.orgId, orgId))
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
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId)));
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
 * Deletes a destination; its deliveries and attempts go with it (foreign keys cascade), so a job still queued
 * for one of them finds no row and does nothing. Returns whether a row was deleted.
 */
export async function deleteWebhook(db: Executor, orgId: string, id: string): Promise<boolean> {
  const rows = await db
    .delete(webhooks)
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId)))
    .returning({ id: webhooks.id });
  return rows.length > 0;
}

/**
 * Turns a destination's `pending` deliveries into `held`, so none goes out while it is disabled (an attempt
 * already in flight finishes). Returns how many were held.
 */
export async function holdPendingDeliveries(db: Executor, webhookId: string): Promise<number> {
  const rows = await db
    .update(deliveries)
    .set({ status: "held" })
    .where(and(eq(deliveries.webhookId, webhookId), eq(deliveries.status, "pending")))
    .returning({ id: deliveries.id });
  return rows.length;
}
