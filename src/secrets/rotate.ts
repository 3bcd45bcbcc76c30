import { and, asc, eq, gt, isNull, or, type SQL, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { webhooks } from "../db/schema.ts";
import { DecryptError } from "../errors.ts";
import { SecretBox } from "./box.ts";
import { sealContext } from "./contexts.ts";
import { sealedKeyIdRows } from "./coverage.ts";

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
type SealedRow = { id: string } & Record<SealedField, string | null>;

/** Rows read per page of the scan. */
const PAGE = 100;
/** Times one row is re-read after a concurrent change beat the re-seal to it. */
const MAX_TRIES = 5;

/** What one run of {@link rotateSecrets} did, and what it left under other keys. */
export interface RotationReport {
  /** The key everything was re-sealed under (SECRETS_KEY's id). */
  key: string;
  /** Sealed values rewritten under `key`. */
  resealed: number;
  /** Rows whose values changed between this run's read and its write, and were read again. */
  reread: number;
  /** Values still sealed under another key when the run ended, by key id (empty when all are under `key`). */
  remaining: Record<string, number>;
  /** Values neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS opens, by key id: these need the right previous key. */
  unreadable: Record<string, number>;
}

/** Rotation could not make progress on one row: it kept changing under the run. */
export class RotationConflictError extends Error {
  override readonly name = "RotationConflictError";
}

/**
 * Re-seals every stored secret that is not under the current key: credentials, signing secrets (the
 * current one and one kept for a rotation's grace period) and Ed25519 secret keys. Run with SECRETS_KEY set
 * to the new key and SECRETS_KEY_PREVIOUS to the old one, beside live traffic: each row is written with a
 * compare-and-set on every sealed column as read, so a secret rotated, a credential replaced or an Ed25519
 * key switched off meanwhile is never overwritten with the older value; the row is read again instead. Rows
 * are paged by id and written one at a time, so a crash midway leaves every value readable with one of the
 * two keys, and a second run picks up what is left. Values no key opens are counted, not fatal.
 *
 * `beforeWrite` runs between a row's read and its write (tests use it to land a concurrent change there).
 */
export async function rotateSecrets(
  db: Executor,
  box: SecretBox,
  opts: { beforeWrite?: (webhookId: string) => Promise<void> } = {},
): Promise<RotationReport> {
  const report: RotationReport = {
    key: box.current.id,
    resealed: 0,
    reread: 0,
    remaining: {},
    unreadable: {},
  };
  const unreadable = new Map<string, number>();
  let after = "";
  for (;;) {
    const rows = await readRows(db, box, gt(webhooks.id, after));
    for (const first of rows) {
      let row: SealedRow | undefined = first;
      for (let tries = 0; row; tries++) {
        if (tries === MAX_TRIES) throw new RotationConflictError(`${row.id} kept changing during rotation`);
        const { update, cannotOpen } = reseal(box, row);
        if (Object.keys(update).length === 0) {
          for (const keyId of cannotOpen) unreadable.set(keyId, (unreadable.get(keyId) ?? 0) + 1);
          break;
        }
        await opts.beforeWrite?.(row.id);
        const written = await db
          .update(webhooks)
          .set(update)
          .where(and(eq(webhooks.id, row.id), ...unchanged(row)))
          .returning({ id: webhooks.id });
        if (written.length === 1) {
          report.resealed += Object.keys(update).length;
          for (const keyId of cannotOpen) unreadable.set(keyId, (unreadable.get(keyId) ?? 0) + 1);
          break;
        }
        report.reread++;
        [row] = await readRows(db, box, eq(webhooks.id, row.id));
      }
    }
    if (rows.length < PAGE) break;
    after = (rows.at(-1) as SealedRow).id;
  }
  report.remaining = await valuesUnderOtherKeys(db, box.current.id);
  report.unreadable = Object.fromEntries(unreadable);
  return report;
}

/** One page of rows holding at least one value not sealed under the current key. */
function readRows(db: Executor, box: SecretBox, where: SQL | undefined): Promise<SealedRow[]> {
  const keyPrefix = `es1.${box.current.id}.%`;
  return db
    .select({
      id: webhooks.id,
      credentialSealed: webhooks.credentialSealed,
      signingSecretSealed: webhooks.signingSecretSealed,
      previousSigningSecretSealed: webhooks.previousSigningSecretSealed,
      ed25519SecretKeySealed: webhooks.ed25519SecretKeySealed,
    })
    .from(webhooks)
    .where(and(where, or(...SEALED_COLUMNS.map((c) => sql`${c.column} not like ${keyPrefix}`))))
    .orderBy(asc(webhooks.id))
    .limit(PAGE);
}

/** The row's values re-sealed under the current key, and the key ids of values no key of `box` opens. */
function reseal(box: SecretBox, row: SealedRow) {
  const update: Partial<Record<SealedField, string>> = {};
  const cannotOpen: string[] = [];
  for (const c of SEALED_COLUMNS) {
    const sealed = row[c.field];
    if (!sealed) continue;
    const keyId = SecretBox.keyIdOf(sealed);
    if (keyId === box.current.id) continue;
    if (keyId === undefined || !box.keyIds().includes(keyId)) {
      cannotOpen.push(keyId ?? "unknown");
      continue;
    }
    const ctx = c.context(row.id);
    try {
      update[c.field] = box.seal(box.open(sealed, ctx), ctx);
    } catch (err) {
      // A value that fails authentication under a key we hold is damaged, not merely old: count it too.
      if (!(err instanceof DecryptError)) throw err;
      cannotOpen.push(keyId);
    }
  }
  return { update, cannotOpen };
}

/** The compare half of compare-and-set: every sealed column still holds what was read. */
function unchanged(row: SealedRow): SQL[] {
  return SEALED_COLUMNS.map((c) => {
    const was = row[c.field];
    return was === null ? isNull(c.column) : eq(c.column, was);
  });
}

/** Counts of sealed values under keys other than `keyId`, by key id (expired grace-period secrets too). */
async function valuesUnderOtherKeys(db: Executor, keyId: string): Promise<Record<string, number>> {
  const rows = await db.execute<{ key_id: string; n: number }>(sql`
    select key_id, count(*)::int as n from (${sealedKeyIdRows({ expiredGrace: true })}) sealed
    where key_id <> ${keyId}
    group by key_id
    order by key_id`);
  return Object.fromEntries(rows.map((r) => [r.key_id, r.n]));
}
