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
import { createOrganization } from "./orgs.ts";
import { openRuntime } from "./runtime.ts";
import { generateSecretsKey } from "./secrets/box.ts";
import { loadSecretBox } from "./secrets/keys.ts";
import { rotateSecrets } from "./secrets/rotate.ts";

const USAGE = `usage: escalation-shield <command>

  migrate                 apply database migrations (creates the database if needed)
  keygen                  print a new base64 SECRETS_KEY
  rotate-secrets-key      re-seal stored secrets under SECRETS_KEY (old key in SECRETS_KEY_PREVIOUS)
  org create <slug>       create an organization and its first admin API key
  serve                   run the HTTP API (admin API, /docs, /healthz, /readyz, /metrics) on HOST:PORT
  worker [--only delivery|evaluator]
                          run the background workers (and /metrics on HOST:METRICS_PORT when set)
  start                   migrate, then run the API and the workers in one process
  demo                    a self-contained end-to-end run on this machine`;

interface Closable {
  close(): Promise<void>;
}

/** Starts a listener; if it cannot listen (port taken), closes `opened` (in reverse) so the process can exit. */
async function serveOrClose(start: () => Promise<Closable>, opened: Closable[]): Promise<Closable> {
  try {
    return await start();
  } catch (err) {
    for (const p of [...opened].reverse()) await p.close();
    throw err;
  }
}

/** Runs until SIGTERM or SIGINT, then closes `parts` in reverse order and exits 0. */
function runUntilSignal(parts: Closable[], log: { info(msg: string): void }): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: finishing work in flight, then exiting`);
    for (const p of [...parts].reverse()) await p.close();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
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
      const box = loadSecretBox(config, log);
      const { db, close } = openDatabase(config.databaseUrl);
      try {
        const count = await rotateSecrets(db, box);
        log.info({ resealed: count, key: box.current.id }, "stored secrets re-sealed under SECRETS_KEY");
      } finally {
        await close();
      }
      return 0;
    }
    case "org": {
      const slug = rest[1];
      if (rest[0] !== "create" || slug === undefined) {
        process.stderr.write("usage: escalation-shield org create <slug>\n");
        return 2;
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
      const rt = openRuntime(config, log);
      const server = await serveOrClose(() => startServer(rt), [rt]);
      runUntilSignal([rt, server], log);
      return -1;
    }
    case "worker":
    case "start": {
      const { values } = parseArgs({ args: rest, options: { only: { type: "string" } } });
      if (values.only !== undefined && !["delivery", "evaluator"].includes(values.only)) {
        process.stderr.write("--only takes delivery or evaluator\n");
        return 2;
      }
      if (command === "start") await migrateDatabase(config.databaseUrl);
      const rt = openRuntime(config, log);
      const parts: Closable[] = [rt];
      parts.push(
        startWorkers(rt, { only: values.only as WorkerName | undefined, analyzer: createLexiconAnalyzer() }),
      );
      // Pushed last so it closes first on a signal (parts close in reverse): no request starts while workers wind down.
      if (command === "start") parts.push(await serveOrClose(() => startServer(rt), parts));
      // `start` serves /metrics on the API port; a worker has no API, so it gets its own listener.
      const metricsPort = config.metricsPort;
      if (command === "worker" && metricsPort !== undefined) {
        parts.push(
          await serveOrClose(
            () => startMetricsServer(rt.metrics.registry, config.host, metricsPort, log),
            parts,
          ),
        );
      }
      log.info({ command, only: values.only ?? "all" }, "workers running");
      runUntilSignal(parts, log);
      return -1;
    }
    case "demo":
      await runDemo(config, inheritedEnvironment(), (line) => process.stdout.write(`${line}\n`));
      return 0;
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
