/**
 * Real `start` / `worker` processes behind TCP proxies (test/helpers/proxy.ts) or on a private
 * redis-server, while Postgres or Redis goes away: the process stays up, says so once per change, answers
 * 503 meanwhile, resumes by itself, and exits promptly on SIGTERM whatever is down.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { eq } from "drizzle-orm";
import { deliveries } from "../src/db/schema.ts";
import { enqueueAlerts } from "./helpers/alerts.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { type CliProcess, startCli } from "./helpers/processes.ts";
import { startProxy } from "./helpers/proxy.ts";
import { type Behaviour, startReceiver } from "./helpers/receiver.ts";
import { freePort, startPrivateRedis } from "./helpers/redis.ts";
import { type Stack, startStack } from "./helpers/stack.ts";
import { waitFor } from "./helpers/wait.ts";

/** A delay per request keeps deliveries flowing while the outage starts. */
function slowOk(ms: number): Behaviour {
  return (_req, res) => {
    setTimeout(() => res.writeHead(200).end("ok"), ms);
  };
}

async function statusCounts(stack: Stack, webhookId: string): Promise<Record<string, number>> {
  const rows = await stack.rt.database.db
    .select({ status: deliveries.status })
    .from(deliveries)
    .where(eq(deliveries.webhookId, webhookId));
  const counts: Record<string, number> = {};
  for (const r of rows) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
}

async function allDelivered(stack: Stack, webhookId: string, count: number, timeoutMs: number) {
  await waitFor(
    `all ${count} delivered`,
    async () => (await statusCounts(stack, webhookId)).delivered === count,
    timeoutMs,
    250,
  );
}

interface LogLine {
  level?: number;
  msg?: string;
  dependency?: string;
  state?: string;
  [k: string]: unknown;
}

function parsed(p: CliProcess): LogLine[] {
  return p.output.flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [{ msg: line, level: 60 }];
    }
  });
}

/** The dependency's state changes, in order, as the process logged them. */
function states(p: CliProcess, dependency: string): string[] {
  return parsed(p)
    .filter((l) => l.dependency === dependency)
    .map((l) => String(l.state));
}

/** Warnings and errors other than the state changes: what would flood the log during an outage. */
function noise(p: CliProcess): LogLine[] {
  return parsed(p).filter((l) => (l.level ?? 0) >= 40 && l.dependency === undefined);
}

/** At most a few warnings or errors besides the state changes; on failure, says which messages repeated. */
function assertQuiet(p: CliProcess, max = 3): void {
  const loud = noise(p);
  if (loud.length <= max) return;
  const counts = new Map<string, number>();
  for (const l of loud) counts.set(String(l.msg), (counts.get(String(l.msg)) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5);
  assert.fail(
    `${loud.length} warnings and errors besides state changes: ${top.map(([m, n]) => `${n}× ${m.slice(0, 120)}`).join("; ")}\nfirst: ${JSON.stringify(loud[0]).slice(0, 600)}`,
  );
}

/** The state-change lines themselves, for failure messages. */
function stateLog(p: CliProcess): string {
  return parsed(p)
    .filter((l) => l.dependency !== undefined)
    .map((l) => JSON.stringify({ time: l.time, dependency: l.dependency, state: l.state, err: l.err }))
    .join("\n");
}

async function apiUrl(p: CliProcess): Promise<string> {
  return waitFor(
    "the API listening",
    () => {
      const line = parsed(p).find((l) => l.msg === "HTTP API listening");
      return typeof line?.url === "string" ? line.url : undefined;
    },
    30_000,
  );
}

async function status(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, { headers: { connection: "close", ...headers } });
  await res.arrayBuffer();
  return res.status;
}

function alive(p: CliProcess): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGTERM, and how long the process took to exit. */
async function stopTimed(p: CliProcess): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  // Past 20 s it is killed, so a hang fails the assertion on `ms` rather than the whole file's timeout.
  const killer = setTimeout(() => p.child.kill("SIGKILL"), 20_000);
  const code = await p.stop("SIGTERM");
  clearTimeout(killer);
  return { code, ms: Date.now() - started };
}

/** While a dependency is away, readiness and the admin API both answer 503. */
async function assertUnavailable(url: string, stack: Stack): Promise<void> {
  assert.equal(await status(`${url}/readyz`), 503);
  assert.equal(
    await status(`${url}/api/integrations/webhooks`, { authorization: `Bearer ${stack.org.adminApiKey}` }),
    503,
  );
}

/** SIGTERM: exit code 0 within the 15 s a shutdown may take. */
async function assertStopsCleanly(cli: CliProcess): Promise<void> {
  const { code, ms } = await stopTimed(cli);
  assert.equal(code, 0);
  assert.ok(ms < 15_000, `stopped after ${ms} ms`);
}

const INFO = { LOG_LEVEL: "info", HOST: "127.0.0.1", PORT: "0" };

describe("outages of Postgres and Redis", { concurrency: true }, () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("Postgres restarts mid-run: the process stays up, answers 503, then delivers every alert", async () => {
    const stack = await startStack({ worker: false });
    const pg = await startProxy(stack.config.databaseUrl);
    const r = await startReceiver({ behaviour: slowOk(20) });
    const via = new URL(stack.config.databaseUrl);
    via.port = String(pg.port);
    const cli = startCli(["start"], { ...stack.env, ...INFO, DATABASE_URL: via.toString() });
    try {
      const url = await apiUrl(cli);
      const wh = await stack.webhook({ url: r.url, events: ["*"] });
      await enqueueAlerts(stack, wh.id, 300);
      await waitFor("deliveries flowing", () => r.requests.length >= 40, 30_000);
      // A restart: every connection dropped, nothing accepted for a while.
      await pg.refuse();
      pg.cut();
      await waitFor("postgres reported down", () => states(cli, "postgres").includes("down"), 10_000);
      await assertUnavailable(url, stack);
      await sleep(2000);
      await pg.accept();
      await waitFor("ready again", async () => (await status(`${url}/readyz`)) === 200, 20_000);
      // A plain dropped connection, without the refusal: reconnects at once.
      await sleep(500);
      pg.cut();
      await allDelivered(stack, wh.id, 300, 120_000);
      assert.ok(alive(cli), "the process is still running");
      const pgStates = states(cli, "postgres");
      assert.equal(pgStates[0], "down");
      assert.equal(pgStates.at(-1), "up");
      assert.ok(pgStates.length <= 4, `one line per change, got:\n${stateLog(cli)}`);
      for (let i = 1; i < pgStates.length; i++) assert.notEqual(pgStates[i], pgStates[i - 1]);
      assertQuiet(cli);
      await assertStopsCleanly(cli);
    } finally {
      await cli.stop("SIGKILL");
      await r.close();
      await pg.close();
      await stack.close();
    }
  });

  test("Redis killed and started again empty: the process stays up and delivers every alert", async () => {
    const port = await freePort();
    let redis = await startPrivateRedis(port);
    const redisUrl = `redis://127.0.0.1:${port}`;
    const stack = await startStack({ worker: false, env: { REDIS_URL: redisUrl } });
    const r = await startReceiver({ behaviour: slowOk(20) });
    const cli = startCli(["start"], { ...stack.env, ...INFO });
    try {
      const url = await apiUrl(cli);
      const wh = await stack.webhook({ url: r.url, events: ["*"] });
      await enqueueAlerts(stack, wh.id, 200);
      await waitFor("deliveries flowing", () => r.requests.length >= 30, 30_000);
      await redis.kill();
      await waitFor("redis reported down", () => states(cli, "redis").includes("down"), 10_000);
      await assertUnavailable(url, stack);
      await sleep(3000);
      assert.ok(alive(cli), "the process survives Redis being gone");
      redis = await startPrivateRedis(port);
      await waitFor("ready again", async () => (await status(`${url}/readyz`)) === 200, 30_000);
      await allDelivered(stack, wh.id, 200, 120_000);
      assert.ok(alive(cli));
      assert.deepEqual(states(cli, "redis"), ["down", "up"], stateLog(cli));
      assertQuiet(cli);
      await assertStopsCleanly(cli);
    } finally {
      await cli.stop("SIGKILL");
      await r.close();
      await stack.close();
      await redis.kill();
    }
  });

  for (const dependency of ["redis", "postgres"] as const) {
    const title =
      dependency === "redis"
        ? "Redis down at start: not ready, then ready and delivering once it comes"
        : "Postgres down at start: not ready, then migrated, ready and delivering once it comes";
    test(title, async () => {
      const stack = await startStack({ worker: false });
      const upstream = dependency === "redis" ? stack.config.redisUrl : stack.config.databaseUrl;
      const proxy = await startProxy(upstream);
      await proxy.refuse();
      const r = await startReceiver();
      const via = new URL(upstream);
      via.port = String(proxy.port);
      const cli = startCli(["start"], {
        ...stack.env,
        ...INFO,
        [dependency === "redis" ? "REDIS_URL" : "DATABASE_URL"]: via.toString(),
      });
      try {
        const url = await apiUrl(cli);
        await waitFor(`${dependency} reported down`, () => states(cli, dependency).includes("down"), 10_000);
        assert.equal(await status(`${url}/readyz`), 503);
        await sleep(3000);
        assert.ok(alive(cli));
        await proxy.accept();
        await waitFor("ready", async () => (await status(`${url}/readyz`)) === 200, 30_000);
        const wh = await stack.webhook({ url: r.url, events: ["*"] });
        await enqueueAlerts(stack, wh.id, 5);
        await allDelivered(stack, wh.id, 5, 60_000);
        assert.deepEqual(states(cli, dependency), ["down", "up"], stateLog(cli));
        assertQuiet(cli);
        assert.equal((await stopTimed(cli)).code, 0);
      } finally {
        await cli.stop("SIGKILL");
        await r.close();
        await proxy.close();
        await stack.close();
      }
    });
  }

  for (const command of [["start"], ["worker"], ["serve"]]) {
    test(`SIGTERM stops \`${command.join(" ")}\` within 15 s while Postgres and Redis are both down`, async () => {
      const stack = await startStack({ worker: false });
      const pg = await startProxy(stack.config.databaseUrl);
      const redis = await startProxy(stack.config.redisUrl);
      const via = new URL(stack.config.databaseUrl);
      via.port = String(pg.port);
      const cli = startCli(command, {
        ...stack.env,
        ...INFO,
        DATABASE_URL: via.toString(),
        REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      });
      try {
        await waitFor(
          "the process running",
          () => parsed(cli).some((l) => l.msg === "workers running" || l.msg === "HTTP API listening"),
          30_000,
        );
        // Going away while running leaves connections and a blocked worker behind, the hard case.
        await redis.refuse();
        await pg.refuse();
        pg.cut();
        redis.cut();
        await sleep(3000);
        assert.ok(alive(cli), "still running while both are down");
        const { code, ms } = await stopTimed(cli);
        assert.ok(ms < 15_000, `exited after ${ms} ms`);
        assert.notEqual(code, null, "exited by itself, not killed");
      } finally {
        await cli.stop("SIGKILL");
        await pg.close();
        await redis.close();
        await stack.close();
      }
    });
  }
});
