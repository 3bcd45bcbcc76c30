import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { startWorkers, type WorkerName } from "../workers/index.ts";
import { createLexiconAnalyzer } from "./analysis/lexicon.ts";
import { startServer } from "./api/server.ts";
import { inheritedEnvironment, loadConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { migrateDatabase } from "./db/migrate.ts";
import { runDemo } from "./demo.ts";
import { ConfigError } from "./errors.ts";
import { createLogger } from "./log.ts";
import { startMetricsServer } from "./metrics-server.ts";
import { createKeyForSlug, createOrganization } from "./orgs.ts";
import { eraseOrganization } from "./retention/erase.ts";
import { isOutage, openRuntime, type Runtime } from "./runtime.ts";
import { generateSecretsKey } from "./secrets/box.ts";
import { ensureDevelopmentKey, loadSecretBox } from "./secrets/keys.ts";
import { rotateSecrets } from "./secrets/rotate.ts";

const USAGE = `usage: escalation-shield <command>

  migrate                 apply database migrations (creates the database if needed)
  keygen                  print a new base64 SECRETS_KEY
  rotate-secrets-key      re-seal stored secrets under SECRETS_KEY (old key in SECRETS_KEY_PREVIOUS)
  org create <slug>       create an organization and its first admin API key
  org delete <slug>       delete an organization and everything of it, in batches
  org key create <slug>   a new admin API key for an organization (for one that lost its keys)
  serve                   run the HTTP API (admin API, /docs, /healthz, /readyz, /metrics) on HOST:PORT
  worker [--only delivery|evaluator]
                          run the background workers (and /metrics on HOST:METRICS_PORT when set)
  start                   migrate, then run the API and the workers in one process
  demo [--keep]           a self-contained end-to-end run on this machine (--keep: stay up for the console)`;

interface Closable {
  close(): Promise<void>;
}

/**
 * How long a SIGTERM's shutdown may take before it gives up on what has not closed: orchestrators commonly
 * wait 15 s before SIGKILL, and attempts in flight end within 5 s.
 */
const SHUTDOWN_DEADLINE_MS = 12_000;
/** How long a part may take to close while Postgres or Redis is down, before it is abandoned. */
const OUTAGE_CLOSE_GRACE_MS = 5000;
/** The longest wait between migration attempts while Postgres is unreachable at start. */
const MIGRATE_RETRY_MAX_MS = 2000;

/** Starts a listener; if it cannot listen (port taken), closes `opened` (in reverse) so the process can exit. */
async function serveOrClose(start: () => Promise<Closable>, opened: Closable[]): Promise<Closable> {
  try {
    return await start();
  } catch (err) {
    for (const p of [...opened].reverse()) await p.close();
    throw err;
  }
}

/** The order parts close in: listeners first, so no request starts while workers wind down; pools last. */
const CLOSE_ORDER = ["api", "metrics", "workers", "runtime"] as const;
type PartName = (typeof CLOSE_ORDER)[number];

/**
 * Runs until SIGTERM or SIGINT, then closes its parts in {@link CLOSE_ORDER} and exits. Exit code 0: every
 * part closed. Exit code 1: a part was abandoned, because the whole shutdown passed
 * {@link SHUTDOWN_DEADLINE_MS} or because Postgres or Redis was down and the part had not closed within
 * {@link OUTAGE_CLOSE_GRACE_MS} (BullMQ's close waits for a Redis that may never return); the log line says
 * which. What an abandoned worker had in flight is recovered as after a crash: its outbox rows are still
 * pending in Postgres.
 */
class Lifecycle {
  private readonly parts = new Map<PartName, Closable>();
  private readonly abort = new AbortController();
  private readonly rt: Runtime;

  constructor(rt: Runtime) {
    this.rt = rt;
    this.parts.set("runtime", rt);
    process.on("SIGTERM", () => void this.stop("SIGTERM"));
    process.on("SIGINT", () => void this.stop("SIGINT"));
    // A rejection nothing awaited that only says a dependency is gone must not end the process; any other
    // still does, as Node's default would.
    process.on("unhandledRejection", (err) => {
      if (!isOutage(err)) throw err;
      rt.log.debug({ err }, "unawaited rejection during an outage");
      rt.dependencies.suspect();
    });
  }

  /** Aborted once shutdown begins. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  add(name: PartName, part: Closable): void {
    this.parts.set(name, part);
  }

  private async stop(signal: string): Promise<void> {
    if (this.abort.signal.aborted) return;
    this.abort.abort();
    const log = this.rt.log;
    log.info(`${signal}: finishing work in flight, then exiting`);
    const deadline = Date.now() + SHUTDOWN_DEADLINE_MS;
    const abandoned: PartName[] = [];
    for (const name of CLOSE_ORDER) {
      const part = this.parts.get(name);
      if (!part) continue;
      const left = Math.max(0, deadline - Date.now());
      const limit = this.rt.dependencies.down().length > 0 ? Math.min(left, OUTAGE_CLOSE_GRACE_MS) : left;
      const closing = part.close().then(
        () => "closed" as const,
        (err: unknown) => {
          log.warn({ err, part: name }, "close failed during shutdown");
          return "closed" as const;
        },
      );
      const timer = new AbortController();
      const outcome = await Promise.race([
        closing,
        sleep(limit, "abandoned" as const, { signal: timer.signal }).catch(() => "closed" as const),
      ]);
      timer.abort();
      if (outcome === "abandoned") abandoned.push(name);
    }
    if (abandoned.length > 0) {
      log.error(
        { abandoned, unavailable: this.rt.dependencies.down() },
        "shutdown gave up waiting for these to close; exiting with code 1",
      );
      process.exit(1);
    }
    process.exit(0);
  }
}

/**
 * Applies migrations, trying again while Postgres is unreachable (the API already answers 503 meanwhile);
 * `false` when shutdown began first. Any other failure (a bad migration) is thrown.
 */
async function migrateWhenReachable(rt: Runtime, signal: AbortSignal): Promise<boolean> {
  for (let delay = 250; ; delay = Math.min(delay * 2, MIGRATE_RETRY_MAX_MS)) {
    if (signal.aborted) return false;
    try {
      await migrateDatabase(rt.config.databaseUrl);
      return true;
    } catch (err) {
      if (!isOutage(err)) throw err;
      rt.log.debug({ err: (err as Error).message }, "migrations wait for postgres");
      rt.dependencies.suspect();
    }
    await sleep(delay, undefined, { signal }).catch(() => undefined);
  }
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "keygen") {
    process.stdout.write(`${generateSecretsKey()}\n`);
    return 0;
  }
  if (command === undefined || command === "help" || command === "--help") {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 1 : 0;
  }
  const config = loadConfig();
  const log = createLogger(config.logLevel);

  switch (command) {
    case "migrate":
      await migrateDatabase(config.databaseUrl);
      log.info("migrations applied");
      return 0;
    case "rotate-secrets-key": {
      const box = loadSecretBox(config);
      const { db, close } = openDatabase(config.databaseUrl);
      try {
        const report = await rotateSecrets(db, box);
        process.stdout.write(`${JSON.stringify(report)}\n`);
        const unreadable = Object.keys(report.unreadable);
        if (unreadable.length > 0) {
          process.stderr.write(
            `values sealed with key ${unreadable.join(", ")} were left as they are: neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS opens them; set SECRETS_KEY_PREVIOUS to that key and run rotate-secrets-key again\n`,
          );
          return 1;
        }
        log.info(report, "stored secrets re-sealed under SECRETS_KEY");
      } finally {
        await close();
      }
      return 0;
    }
    case "org": {
      if (rest[0] === "key") {
        const keySlug = rest[2];
        if (rest[1] !== "create" || keySlug === undefined) {
          process.stderr.write("usage: escalation-shield org key create <slug>\n");
          return 2;
        }
        const { db, close } = openDatabase(config.databaseUrl);
        try {
          const key = await db.transaction((tx) => createKeyForSlug(tx, keySlug));
          if (!key) {
            process.stderr.write(`no organization "${keySlug}"\n`);
            return 1;
          }
          process.stdout.write(
            `${JSON.stringify({ id: key.orgId, slug: keySlug, admin_api_key: key.token })}\n`,
          );
        } finally {
          await close();
        }
        return 0;
      }
      const slug = rest[1];
      if ((rest[0] !== "create" && rest[0] !== "delete") || slug === undefined) {
        process.stderr.write("usage: escalation-shield org create|delete <slug>\n");
        return 2;
      }
      if (rest[0] === "delete") {
        const { db, close } = openDatabase(config.databaseUrl);
        try {
          const erased = await eraseOrganization(db, slug);
          if (!erased) {
            process.stderr.write(`no organization "${slug}"\n`);
            return 1;
          }
          process.stdout.write(`${JSON.stringify({ slug, deleted: erased })}\n`);
        } finally {
          await close();
        }
        return 0;
      }
      const { db, close } = openDatabase(config.databaseUrl);
      try {
        const org = await db.transaction((tx) => createOrganization(tx, slug));
        process.stdout.write(
          `${JSON.stringify({ id: org.id, slug: org.slug, admin_api_key: org.adminApiKey })}\n`,
        );
      } finally {
        await close();
      }
      return 0;
    }
    case "serve": {
      await ensureDevelopmentKey(config, log);
      const rt = openRuntime(config, log);
      const lifecycle = new Lifecycle(rt);
      lifecycle.add("api", await serveOrClose(() => startServer(rt), [rt]));
      return -1;
    }
    case "worker":
    case "start": {
      const { values } = parseArgs({ args: rest, options: { only: { type: "string" } } });
      if (values.only !== undefined && !["delivery", "evaluator"].includes(values.only)) {
        process.stderr.write("--only takes delivery or evaluator\n");
        return 2;
      }
      await ensureDevelopmentKey(config, log);
      const rt = openRuntime(config, log);
      const lifecycle = new Lifecycle(rt);
      if (command === "start") {
        // The API listens before migrating, so that while Postgres is unreachable it answers 503 (and
        // /readyz says why) instead of the process exiting.
        rt.pending.add("migrations");
        lifecycle.add("api", await serveOrClose(() => startServer(rt), [rt]));
        try {
          if (!(await migrateWhenReachable(rt, lifecycle.signal))) return -1;
        } catch (err) {
          await rt.close();
          throw err;
        }
        rt.pending.delete("migrations");
      }
      const workers = startWorkers(rt, {
        only: values.only as WorkerName | undefined,
        analyzer: createLexiconAnalyzer(),
      });
      lifecycle.add("workers", workers);
      // `start` serves /metrics on the API port; a worker has no API, so it gets its own listener.
      const metricsPort = config.metricsPort;
      if (command === "worker" && metricsPort !== undefined) {
        lifecycle.add(
          "metrics",
          await serveOrClose(
            () => startMetricsServer(rt.metrics.registry, config.host, metricsPort, log),
            [rt, workers],
          ),
        );
      }
      log.info({ command, only: values.only ?? "all" }, "workers running");
      return -1;
    }
    case "demo": {
      const { values } = parseArgs({ args: rest, options: { keep: { type: "boolean" } } });
      await runDemo(config, inheritedEnvironment(), (line) => process.stdout.write(`${line}\n`), {
        keep: values.keep,
      });
      return 0;
    }
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exitCode = 78;
    } else {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
