import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { Redis } from "ioredis";
import { waitFor } from "./wait.ts";

/** Deletes every key under a test's queue prefix, so tests sharing the machine's Redis leave nothing behind. */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, "close");
  return port;
}

/** A private redis-server that a test can kill (SIGKILL: nothing saved) and start again on the same port. */
export interface PrivateRedis {
  url: string;
  port: number;
  child: ChildProcess;
  /** Ends it at once, as a crash would. */
  kill(): Promise<void>;
  /** Ends it politely. */
  stop(): Promise<void>;
}

/**
 * A redis-server of the test's own on `port` (default: a free one), keeping nothing on disk, so it can be
 * flushed, killed and restarted empty without touching anyone else's data.
 */
export async function startPrivateRedis(port?: number): Promise<PrivateRedis> {
  port ??= await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  await waitFor("private redis-server", async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    // Refusals while the server starts surface through connect(); the event would only repeat them.
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.ping()) === "PONG";
    } finally {
      r.disconnect();
    }
  });
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  };
  return { url, port, child, kill: () => end("SIGKILL"), stop: () => end("SIGTERM") };
}
