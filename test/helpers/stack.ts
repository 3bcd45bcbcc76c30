import { createLexiconAnalyzer } from "../../src/analysis/lexicon.ts";
import type { Config } from "../../src/config.ts";
import { createWebhook, type WebhookInput } from "../../src/destinations/store.ts";
import { createLogger } from "../../src/log.ts";
import { createOrganization } from "../../src/orgs.ts";
import { openRuntime, type Runtime } from "../../src/runtime.ts";
import { startWorkers } from "../../workers/index.ts";
import { createTestDatabase, testConfig, testEnv } from "./env.ts";
import { deletePrefix } from "./redis.ts";

export interface Stack {
  env: Record<string, string>;
  config: Config;
  /** The test's own database, directly (DATABASE_URL may point at a test's proxy in front of it). */
  databaseUrl: string;
  rt: Runtime;
  org: { id: string; slug: string; adminApiKey: string };
  /** Log lines the runtime wrote (JSON strings). */
  logs: string[];
  /** Starts workers and their sweeper in this process: the delivery worker, or all with the real analyzer. */
  startWorker(which?: "delivery" | "all"): { close(): Promise<void> };
  webhook(input: WebhookInput): Promise<{ id: string; secret: string }>;
  close(): Promise<void>;
}

/** A log destination that keeps every line (JSON strings) in `logs`. */
export function memorySink(): { logs: string[]; sink: NodeJS.WritableStream } {
  const logs: string[] = [];
  const sink = {
    write(line: string) {
      logs.push(line);
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { logs, sink };
}

/**
 * A test's own product: its own database (copied from the template), queue prefix and secrets key, an
 * organization, and (unless `worker: false`) a delivery worker running in this process (`worker: "all"` adds
 * the automation evaluator with the built-in analyzer).
 */
export async function startStack(
  options: { env?: Record<string, string>; worker?: boolean | "all" } = {},
): Promise<Stack> {
  const database = await createTestDatabase();
  const env = testEnv(database.url, options.env);
  const config = testConfig(env);
  const { logs, sink } = memorySink();
  const rt = openRuntime(config, createLogger("debug", sink));
  const org = await rt.database.db.transaction((tx) =>
    createOrganization(tx, `org-${env.QUEUE_PREFIX?.slice(5)}`),
  );
  const workers: { close(): Promise<void> }[] = [];
  const startWorker = (which: "delivery" | "all" = "delivery") => {
    const w =
      which === "all"
        ? startWorkers(rt, { analyzer: createLexiconAnalyzer() })
        : startWorkers(rt, { only: "delivery" });
    workers.push(w);
    return w;
  };
  if (options.worker !== false) startWorker(options.worker === "all" ? "all" : "delivery");
  return {
    env,
    config,
    databaseUrl: database.url,
    rt,
    org,
    logs,
    startWorker,
    webhook: (input) => createWebhook(rt.database.db, rt.box, org.id, input),
    async close() {
      for (const w of workers) await w.close();
      await rt.close();
      await deletePrefix(config.redisUrl, config.queuePrefix);
      await database.drop();
    },
  };
}
