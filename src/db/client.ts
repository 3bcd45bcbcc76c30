import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema.ts";

export type Db = PostgresJsDatabase<typeof schema>;
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];
/** What every data-access function takes first: the database or a transaction the caller owns. */
export type Executor = Db | Tx;

export interface Database {
  db: Db;
  /** Closes the pool, waiting up to `timeoutSeconds` (default 5) for queries in flight. */
  close(timeoutSeconds?: number): Promise<void>;
}

/**
 * Opens a postgres.js pool. `max` is the pool size (default 10); notices are dropped because
 * `CREATE … IF NOT EXISTS` would otherwise print to stdout.
 */
export function openDatabase(url: string, options: { max?: number } = {}): Database {
  const client = postgres(url, { max: options.max ?? 10, onnotice: () => {}, connect_timeout: 10 });
  const db = drizzle(client, { schema });
  return { db, close: (timeout = 5) => client.end({ timeout }) };
}
