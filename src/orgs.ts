import { createHash } from "node:crypto";
import type { Executor } from "./db/client.ts";
import { apiKeys, organizations } from "./db/schema.ts";
import { newId, newToken } from "./ids.ts";

/** Slugs appear in alert payloads and record URLs, so they stay URL-safe. */
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** SHA-256 hex of an API token: what is stored and looked up, never the token. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Creates an admin API key; the token is returned once and only its hash is kept. */
export async function createAdminKey(
  db: Executor,
  orgId: string,
  name: string,
): Promise<{ id: string; token: string; createdAt: Date }> {
  const token = newToken("esk_");
  const [row] = await db
    .insert(apiKeys)
    .values({ id: newId("key"), orgId, name, tokenHash: hashToken(token) })
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
  return { id, slug, adminApiKey: key.token };
}
