import { createHash } from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import { recordChange } from "./audit/log.ts";
import type { Executor } from "./db/client.ts";
import { keysetPage, type Page, type PageOf } from "./db/paging.ts";
import { apiKeys, type KeyScope, organizations } from "./db/schema.ts";
import { newId, newToken } from "./ids.ts";

/** Slugs appear in alert payloads and record URLs, so they stay URL-safe. */
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** SHA-256 hex of an API token: what is stored and looked up, never the token. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Read-only tokens start so; admin tokens start `esk_`. */
const READ_ONLY_TOKEN = "esr_";

/**
 * What is stored and looked up for an admin API token. A read-only token's hash is bound to its scope, so a
 * process older than scopes (which looks keys up by the plain SHA-256 and has no notion of read-only) finds
 * no key for it and answers 401 during a rolling upgrade, instead of letting it change everything.
 */
export function adminKeyHash(token: string): string {
  return token.startsWith(READ_ONLY_TOKEN) ? hashToken(`read-only:${token}`) : hashToken(token);
}

/** Creates an admin API key (`scope` default `admin`); the token is returned once and only its hash is kept. */
export async function createAdminKey(
  db: Executor,
  orgId: string,
  name: string,
  scope: KeyScope = "admin",
): Promise<{ id: string; token: string; createdAt: Date }> {
  const token = newToken(scope === "read-only" ? READ_ONLY_TOKEN : "esk_");
  const [row] = await db
    .insert(apiKeys)
    .values({ id: newId("key"), orgId, name, scope, tokenHash: adminKeyHash(token) })
    .returning({ id: apiKeys.id, createdAt: apiKeys.createdAt });
  if (!row) throw new Error("insert returned no row");
  return { id: row.id, token, createdAt: row.createdAt };
}

/** Creates an organization and its first admin key, in the caller's transaction. */
export async function createOrganization(
  db: Executor,
  slug: string,
): Promise<{ id: string; slug: string; adminApiKey: string }> {
  if (!SLUG_PATTERN.test(slug)) {
    throw new Error(`slug "${slug}" must be lowercase letters, digits and hyphens, 1 to 63 characters`);
  }
  const id = newId("org");
  await db.insert(organizations).values({ id, slug });
  const key = await createAdminKey(db, id, "initial admin key");
  await auditKeyMadeOutsideApi(db, id, { id: key.id, name: "initial admin key", createdAt: key.createdAt });
  return { id, slug, adminApiKey: key.token };
}

/** The admin key a token hash belongs to, with its organization; `undefined` when unknown or revoked. */
export async function findActiveAdminKey(
  db: Executor,
  tokenHash: string,
): Promise<
  { keyId: string; tokenHash: string; scope: KeyScope; orgId: string; orgSlug: string } | undefined
> {
  const [row] = await db
    .select({
      keyId: apiKeys.id,
      tokenHash: apiKeys.tokenHash,
      scope: apiKeys.scope,
      orgId: organizations.id,
      orgSlug: organizations.slug,
    })
    .from(apiKeys)
    .innerJoin(organizations, eq(organizations.id, apiKeys.orgId))
    .where(and(eq(apiKeys.tokenHash, tokenHash), isNull(apiKeys.revokedAt)));
  return row;
}

/** An organization's admin keys that are not revoked, oldest first. Never the token: only its hash is stored. */
export async function listAdminKeys(
  db: Executor,
  orgId: string,
  pageOf: PageOf,
  perPage: number,
): Promise<Page<{ id: string; name: string; scope: KeyScope; createdAt: Date }>> {
  return keysetPage(
    db,
    {
      table: apiKeys,
      columns: { id: apiKeys.id, name: apiKeys.name, scope: apiKeys.scope, createdAt: apiKeys.createdAt },
      createdAt: apiKeys.createdAt,
      id: apiKeys.id,
      where: and(eq(apiKeys.orgId, orgId), isNull(apiKeys.revokedAt)),
      newestFirst: false,
    },
    pageOf,
    perPage,
  );
}

/** One live key of the organization, as the API shows it; undefined when there is none (or it was revoked). */
export async function getAdminKey(db: Executor, orgId: string, id: string): Promise<KeyView | undefined> {
  const [row] = await db
    .select({ id: apiKeys.id, name: apiKeys.name, scope: apiKeys.scope, createdAt: apiKeys.createdAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, id), eq(apiKeys.orgId, orgId), isNull(apiKeys.revokedAt)));
  return row;
}

/** A key as the API shows it (never the token). */
export interface KeyView {
  id: string;
  name: string;
  scope: KeyScope;
  createdAt: Date;
}

/**
 * Revokes one of the organization's API keys; it is refused from the next request on. `"none"` when there is
 * no such key, `"last"` when it is the organization's last admin-scoped one (an organization without one could
 * only be changed again through the CLI), otherwise the key as it was. Two revocations at once cannot both
 * pass the check: the organization's keys are locked first.
 */
export async function revokeAdminKey(
  db: Executor,
  orgId: string,
  id: string,
): Promise<KeyView | "none" | "last"> {
  const live = await db
    .select({ id: apiKeys.id, name: apiKeys.name, scope: apiKeys.scope, createdAt: apiKeys.createdAt })
    .from(apiKeys)
    .where(and(eq(apiKeys.orgId, orgId), isNull(apiKeys.revokedAt)))
    .for("update");
  const key = live.find((k) => k.id === id);
  if (!key) return "none";
  if (key.scope === "admin" && live.filter((k) => k.scope === "admin").length === 1) return "last";
  await db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.id, id));
  return key;
}

/** A new admin key (named `cli`) for the organization with this slug, and its id; undefined when there is none. */
export async function createKeyForSlug(
  db: Executor,
  slug: string,
): Promise<{ orgId: string; keyId: string; token: string } | undefined> {
  const [org] = await db
    .select({ id: organizations.id })
    .from(organizations)
    .where(eq(organizations.slug, slug));
  if (!org) return undefined;
  const key = await createAdminKey(db, org.id, "cli");
  await auditKeyMadeOutsideApi(db, org.id, { id: key.id, name: "cli", createdAt: key.createdAt });
  return { orgId: org.id, keyId: key.id, token: key.token };
}

/** Keys the CLI makes are in the audit log too, with no key or request behind them. */
function auditKeyMadeOutsideApi(
  db: Executor,
  orgId: string,
  key: { id: string; name: string; createdAt: Date },
) {
  return recordChange(
    db,
    { orgId, keyId: null, referenceId: null },
    {
      action: "api_key.created",
      targetType: "api_key",
      targetId: key.id,
      before: null,
      after: { id: key.id, name: key.name, scope: "admin", created_at: key.createdAt.toISOString() },
    },
  );
}

/** Most admin keys an organization holds at once (revoked ones do not count). */
export const MAX_KEYS_PER_ORG = 50;

/**
 * The organization's keys that are not revoked, counted with the organization's row locked, so two creations
 * at once cannot both pass a limit.
 */
export async function countLiveKeys(db: Executor, orgId: string): Promise<number> {
  await db
    .select({ id: organizations.id })
    .from(organizations)
    .where(eq(organizations.id, orgId))
    .for("update");
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(apiKeys)
    .where(and(eq(apiKeys.orgId, orgId), isNull(apiKeys.revokedAt)));
  return row?.n ?? 0;
}
