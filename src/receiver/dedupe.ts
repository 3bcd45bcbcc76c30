/**
 * Remembers which deliveries a receiver has taken, keyed by their `Idempotency-Key`, in a store that
 * outlives the process (Redis or Postgres), so a retry that arrives after a restart is still a duplicate.
 */
export interface Deduper {
  /** Records `key`; `"first"` the first time it is seen, `"duplicate"` every time after. */
  check(key: string): Promise<"first" | "duplicate">;
}

/** The one command the Redis deduper sends; an ioredis client fits as it is. */
export interface RedisLike {
  set(key: string, value: string, secondsToken: "EX", seconds: number, nx: "NX"): Promise<"OK" | null>;
}

/**
 * A deduper on Redis: `SET <prefix><key> 1 EX <ttl> NX`, which is atomic, so two deliveries racing on
 * two processes still give one `"first"`. `prefix` defaults to `"webhook:seen:"`; keys expire after
 * `ttlSeconds` (default 7 days, longer than Escalation Shield's ~28 h of retries).
 */
export function createRedisDeduper(
  redis: RedisLike,
  options: { prefix?: string; ttlSeconds?: number } = {},
): Deduper {
  const prefix = options.prefix ?? "webhook:seen:";
  const ttl = options.ttlSeconds ?? 7 * 86_400;
  if (!Number.isInteger(ttl) || ttl < 1)
    throw new RangeError("ttlSeconds must be a whole number of seconds, at least 1");
  return {
    async check(key) {
      const set = await redis.set(`${prefix}${key}`, "1", "EX", ttl, "NX");
      return set === null ? "duplicate" : "first";
    },
  };
}

/** postgres.js (`sql.unsafe`) or node-postgres (`client.query` / `pool.query`): either is accepted. */
export type SqlLike =
  | { unsafe(query: string, params?: never[]): PromiseLike<ArrayLike<unknown>> }
  | { query(query: string, params?: unknown[]): PromiseLike<{ rows: unknown[] }> };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/;

/**
 * A deduper on Postgres: `insert … on conflict do nothing` into `table` (default `webhook_deliveries_seen`,
 * optionally schema-qualified), which is created on first use if missing. Rows are kept: delete old ones
 * by `seen_at` when the table grows.
 */
export function createPostgresDeduper(sql: SqlLike, options: { table?: string } = {}): Deduper {
  const table = options.table ?? "webhook_deliveries_seen";
  if (!IDENTIFIER.test(table)) throw new TypeError(`"${table}" is not a plain table name`);
  const quoted = table
    .split(".")
    .map((p) => `"${p}"`)
    .join(".");
  const run = async (query: string, params: string[] = []): Promise<number> => {
    if ("unsafe" in sql) return (await sql.unsafe(query, params as never[])).length;
    return (await sql.query(query, params)).rows.length;
  };
  let ready: Promise<unknown> | undefined;
  const ensureTable = () => {
    ready ??= run(
      `create table if not exists ${quoted} (key text primary key, seen_at timestamptz not null default now())`,
    ).catch((err: unknown) => {
      // A failed creation (database down) is tried again on the next call rather than remembered.
      ready = undefined;
      throw err;
    });
    return ready;
  };
  return {
    async check(key) {
      await ensureTable();
      const inserted = await run(
        `insert into ${quoted} (key) values ($1) on conflict (key) do nothing returning 1`,
        [key],
      );
      return inserted === 1 ? "first" : "duplicate";
    },
  };
}
