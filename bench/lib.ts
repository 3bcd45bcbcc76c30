import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import postgres from "postgres";
import { migrateDatabase } from "../src/db/migrate.ts";
import { generateSecretsKey } from "../src/secrets/box.ts";

export const PG_URL = process.env.BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
/** The product's DELIVERY_CONCURRENCY in every run, and the baseline worker's concurrency. */
export const CONCURRENCY = 64;

export function randomTag(bytes = 4): string {
  return randomBytes(bytes).toString("hex");
}

// ---------------------------------------------------------------- a part's lifetime

export interface PartContext {
  /** Aborted when the part runs out of time; long loops check it. */
  signal: AbortSignal;
  /** Registers a clean-up. They run in reverse order when the part ends, whether it succeeded or not. */
  defer(what: string, fn: () => unknown): void;
  /** A progress line on stderr, so a slow part shows what it is waiting for. */
  note(line: string): void;
  /** Milliseconds left before the part's time limit. */
  remainingMs(): number;
}

export type PartOutcome<T> =
  | { ok: true; value: T; seconds: number; cleanupErrors: string[] }
  | { ok: false; error: string; seconds: number; cleanupErrors: string[] };

const CLEANUP_LIMIT_MS = 20_000;

/** Clean-ups of the part running now, for a bench interrupted with Ctrl-C. */
let activeCleanups: (() => Promise<void>) | undefined;

/** For the bench's entry points: Ctrl-C still drops the part's database and stops its children. */
export function cleanUpOnSignals(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: cleaning up the running part, then exiting\n`);
      const cleanup = activeCleanups ?? (async () => {});
      void cleanup().finally(() => process.exit(130));
    });
  }
}

/**
 * Runs one part with a time limit. When the limit passes the part is abandoned (its signal aborts) and its
 * clean-ups run at once, which also ends whatever it was waiting on: children are killed, pools closed.
 */
export async function runPart<T>(
  id: string,
  limitMs: number,
  fn: (ctx: PartContext) => Promise<T>,
): Promise<PartOutcome<T>> {
  const started = performance.now();
  const controller = new AbortController();
  const cleanups: { what: string; fn: () => unknown }[] = [];
  const cleanupErrors: string[] = [];
  const deadline = Date.now() + limitMs;
  const ctx: PartContext = {
    signal: controller.signal,
    defer: (what, fn) => cleanups.push({ what, fn }),
    note: (line) =>
      process.stderr.write(`  [${id} ${((performance.now() - started) / 1000).toFixed(1)}s] ${line}\n`),
    remainingMs: () => deadline - Date.now(),
  };
  let cleaned: Promise<void> | undefined;
  const runCleanups = () => {
    cleaned ??= (async () => {
      for (const c of cleanups.reverse()) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve().then(c.fn),
            new Promise((_, reject) => {
              timer = setTimeout(
                () => reject(new Error(`took over ${CLEANUP_LIMIT_MS / 1000} s`)),
                CLEANUP_LIMIT_MS,
              );
            }),
          ]);
        } catch (err) {
          cleanupErrors.push(`${c.what}: ${message(err)}`);
        } finally {
          clearTimeout(timer);
        }
      }
    })();
    return cleaned;
  };
  activeCleanups = runCleanups;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`timed out after ${limitMs / 1000} s`);
      controller.abort(err);
      reject(err);
    }, limitMs);
  });
  try {
    const value = await Promise.race([fn(ctx), timedOut]);
    return { ok: true, value, seconds: secondsSince(started), cleanupErrors };
  } catch (err) {
    controller.abort(err);
    return { ok: false, error: message(err), seconds: secondsSince(started), cleanupErrors };
  } finally {
    clearTimeout(timer);
    await runCleanups();
    activeCleanups = undefined;
  }
}

function secondsSince(started: number): number {
  return Math.round((performance.now() - started) / 100) / 10;
}

export function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Time kept back from a wait for reading results and cleaning up (a worker with hung attempts takes 5 s). */
const RESERVE_MS = 15_000;

/** When a wait of `wantedMs` from now must end so the part still finishes within its time limit. */
export function waitUntilMs(ctx: PartContext, wantedMs: number): number {
  return Date.now() + Math.max(1000, Math.min(wantedMs, ctx.remainingMs() - RESERVE_MS));
}

/**
 * Polls `check` every `intervalMs` until it is true (returns true) or `untilMs` (a Date.now() time) passes
 * (returns false, so the caller can report what it got). Throws when the part is aborted.
 */
export async function pollUntil(
  signal: AbortSignal,
  untilMs: number,
  check: () => Promise<boolean>,
  intervalMs = 100,
): Promise<boolean> {
  for (;;) {
    signal.throwIfAborted();
    if (await check()) return true;
    if (Date.now() >= untilMs) return false;
    await sleep(intervalMs, undefined, { signal });
  }
}

// ---------------------------------------------------------------- Postgres, Redis, ports

/** A fresh, migrated `es_bench_<random>` database, dropped by the part's clean-ups. */
export async function benchDatabase(ctx: PartContext): Promise<string> {
  const name = `es_bench_${randomTag(6)}`;
  const url = `${PG_URL}/${name}`;
  // Registered before creating it, so a migration that fails halfway still leaves nothing behind.
  ctx.defer(`drop database ${name}`, () => dropDatabase(name));
  await migrateDatabase(url);
  return url;
}

async function dropDatabase(name: string): Promise<void> {
  const admin = postgres(`${PG_URL}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** A queue prefix of the part's own; every key under it is deleted by the part's clean-ups. */
export function benchPrefix(ctx: PartContext, redisUrl = REDIS_URL): string {
  const prefix = `es_bench_${randomTag(4)}`;
  ctx.defer(`delete redis keys ${prefix}:*`, () => deletePrefix(redisUrl, prefix));
  return prefix;
}

export async function deletePrefix(url: string, prefix: string): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 2 });
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, "close");
  return port;
}

/**
 * The environment of the product's processes in a part, as a user would set it for this setup: plain-HTTP
 * receivers on loopback allowed, its own database, queue prefix and secrets key.
 */
export function productEnv(databaseUrl: string, queuePrefix: string, extra: Record<string, string> = {}) {
  return {
    NODE_ENV: "production",
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: queuePrefix,
    SECRETS_KEY: generateSecretsKey(),
    DELIVERY_CONCURRENCY: String(CONCURRENCY),
    ALLOW_HTTP_DESTINATIONS: "true",
    DESTINATION_ALLOWLIST: "127.0.0.1",
    LOG_LEVEL: "info",
    ...extra,
  };
}

// ---------------------------------------------------------------- numbers

export function perSecond(count: number, ms: number): number {
  return ms > 0 ? (count * 1000) / ms : 0;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

export function fmtRate(n: number): string {
  return `${fmtInt(n)}/s`;
}

export function fmtMs(n: number): string {
  return n < 10 ? `${n.toFixed(2)} ms` : n < 100 ? `${n.toFixed(1)} ms` : `${fmtInt(n)} ms`;
}
