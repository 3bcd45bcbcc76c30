import { sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";

/** Most key ids one check names; a handful is enough to tell an operator which key to configure. */
const MAX_NAMED = 5;

/**
 * Ids of the keys stored destination secrets are sealed with, leaving out `except` (at most five), or none
 * when the schema has not been migrated yet. With `except` = this process's SECRETS_KEY and
 * SECRETS_KEY_PREVIOUS, a process started with the wrong key finds out here, before any delivery is held for
 * it. Reads only the envelopes' key id part; opens nothing. An expired grace-period secret is not counted.
 */
export async function sealedKeyIds(db: Executor, except: string[]): Promise<string[]> {
  const [table] = await db.execute<{ present: boolean }>(
    sql`select to_regclass('webhooks') is not null as present`,
  );
  if (!table?.present) return [];
  const leftOut =
    except.length === 0
      ? sql``
      : sql`where key_id not in (${sql.join(
          except.map((k) => sql`${k}`),
          sql`, `,
        )})`;
  const rows = await db.execute<{ key_id: string }>(sql`
    select distinct key_id from (${sealedKeyIdRows({ expiredGrace: false })}) sealed
    ${leftOut}
    limit ${MAX_NAMED}`);
  return rows.map((r) => r.key_id);
}

/**
 * One row (`key_id`) per sealed value of every destination, for counting by key. `expiredGrace` counts a
 * previous signing secret whose grace period is over too (still stored until the next rotation).
 */
export function sealedKeyIdRows(options: { expiredGrace: boolean }) {
  const previous = options.expiredGrace ? sql`` : sql`and previous_secret_expires_at > now()`;
  return sql`
    select split_part(signing_secret_sealed, '.', 2) as key_id from webhooks
    union all select split_part(credential_sealed, '.', 2) from webhooks where credential_sealed is not null
    union all select split_part(ed25519_secret_key_sealed, '.', 2) from webhooks
      where ed25519_secret_key_sealed is not null
    union all select split_part(previous_signing_secret_sealed, '.', 2) from webhooks
      where previous_signing_secret_sealed is not null ${previous}`;
}
