import { eq, or, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { webhooks } from "../db/schema.ts";
import { SecretBox } from "./box.ts";
import { sealContext } from "./contexts.ts";

/** Every sealed column of `webhooks`, with the context its values are sealed under. */
const SEALED_COLUMNS = [
  { column: webhooks.credentialSealed, field: "credentialSealed", context: sealContext.credential },
  { column: webhooks.signingSecretSealed, field: "signingSecretSealed", context: sealContext.signingSecret },
  {
    column: webhooks.previousSigningSecretSealed,
    field: "previousSigningSecretSealed",
    context: sealContext.previousSigningSecret,
  },
  {
    column: webhooks.ed25519SecretKeySealed,
    field: "ed25519SecretKeySealed",
    context: sealContext.ed25519SecretKey,
  },
] as const;

type SealedField = (typeof SEALED_COLUMNS)[number]["field"];

/**
 * Re-seals every stored secret that is not under the current key: credentials, signing secrets (the
 * current one and one kept for a rotation's grace period) and Ed25519 secret keys. Run with SECRETS_KEY set
 * to the new key and SECRETS_KEY_PREVIOUS to the old one; rows are rewritten one at a time so a crash
 * midway leaves every value readable with one of the two keys. Returns how many values were re-sealed.
 */
export async function rotateSecrets(db: Executor, box: SecretBox): Promise<number> {
  let count = 0;
  const keyPrefix = `es1.${box.current.id}.`;
  const rows = await db
    .select({
      id: webhooks.id,
      credentialSealed: webhooks.credentialSealed,
      signingSecretSealed: webhooks.signingSecretSealed,
      previousSigningSecretSealed: webhooks.previousSigningSecretSealed,
      ed25519SecretKeySealed: webhooks.ed25519SecretKeySealed,
    })
    .from(webhooks)
    .where(or(...SEALED_COLUMNS.map((c) => sql`${c.column} not like ${`${keyPrefix}%`}`)));
  for (const row of rows) {
    const update: Partial<Record<SealedField, string>> = {};
    for (const c of SEALED_COLUMNS) {
      const sealed = row[c.field];
      if (!sealed || SecretBox.keyIdOf(sealed) === box.current.id) continue;
      const ctx = c.context(row.id);
      update[c.field] = box.seal(box.open(sealed, ctx), ctx);
      count++;
    }
    if (Object.keys(update).length > 0) await db.update(webhooks).set(update).where(eq(webhooks.id, row.id));
  }
  return count;
}
