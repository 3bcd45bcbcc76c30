import { eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { webhooks } from "../db/schema.ts";
import { SecretBox } from "./box.ts";
import { sealContext } from "./contexts.ts";

/**
 * Re-seals every stored secret that is not under the current key. Run with SECRETS_KEY set to the new
 * key and SECRETS_KEY_PREVIOUS to the old one; rows are rewritten one at a time so a crash midway
 * leaves every value readable with one of the two keys. Returns how many values were re-sealed.
 */
export async function rotateSecrets(db: Executor, box: SecretBox): Promise<number> {
  let count = 0;
  const keyPrefix = `es1.${box.current.id}.`;
  const rows = await db
    .select({ id: webhooks.id, credential: webhooks.credentialSealed, signing: webhooks.signingSecretSealed })
    .from(webhooks)
    .where(
      sql`${webhooks.signingSecretSealed} not like ${`${keyPrefix}%`} or ${webhooks.credentialSealed} not like ${`${keyPrefix}%`}`,
    );
  for (const row of rows) {
    const update: { credentialSealed?: string; signingSecretSealed?: string } = {};
    if (row.credential && SecretBox.keyIdOf(row.credential) !== box.current.id) {
      const ctx = sealContext.credential(row.id);
      update.credentialSealed = box.seal(box.open(row.credential, ctx), ctx);
      count++;
    }
    if (SecretBox.keyIdOf(row.signing) !== box.current.id) {
      const ctx = sealContext.signingSecret(row.id);
      update.signingSecretSealed = box.seal(box.open(row.signing, ctx), ctx);
      count++;
    }
    if (Object.keys(update).length > 0) await db.update(webhooks).set(update).where(eq(webhooks.id, row.id));
  }
  return count;
}
