import { sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";

/** Most key ids one check names; a handful is enough to tell an operator which key to configure. */
const MAX_NAMED = 5;

/**
 * Ids of keys that stored destination secrets are sealed with but that are not among `keyIds` (this
 * process's SECRETS_KEY and SECRETS_KEY_PREVIOUS): a process started with the wrong key finds out here,
 * before any delivery is held for it. Reads only the envelopes' key id part; opens nothing.
 */
export async function missingKeyIds(db: Executor, keyIds: string[]): Promise<string[]> {
  const known = sql.join(
    keyIds.map((k) => sql`${k}`),
    sql`, `,
  );
  const rows = await db.execute<{ key_id: string }>(sql`
    select distinct key_id from (
      select split_part(signing_secret_sealed, '.', 2) as key_id from webhooks
      union all select split_part(credential_sealed, '.', 2) from webhooks where credential_sealed is not null
      union all select split_part(ed25519_secret_key_sealed, '.', 2) from webhooks
        where ed25519_secret_key_sealed is not null
      union all select split_part(previous_signing_secret_sealed, '.', 2) from webhooks
        where previous_signing_secret_sealed is not null and previous_secret_expires_at > now()
    ) sealed
    where key_id not in (${known})
    limit ${MAX_NAMED}`);
  return rows.map((r) => r.key_id);
}
