/**
 * postgres.js 3.4.9 writes small messages from a setImmediate; when the socket closes first, that
 * callback dereferences a null socket and the TypeError kills the process (patches/postgres+3.4.9.patch).
 * Each case runs in a child process, since the failure being tested is the process dying.
 *
 * TEST_POSTGRES_MODULE points the child at another copy of postgres.js (e.g. an unpatched one, to see
 * these tests fail, or a new release, to see whether the patch can be dropped).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, describe, test } from "node:test";
import postgres from "postgres";
import { createTestDatabase } from "./helpers/env.ts";
import { assertNoOpenHandles, handleBaseline } from "./helpers/leaks.ts";
import { startProxy } from "./helpers/proxy.ts";
import { waitFor } from "./helpers/wait.ts";

const MODULE = process.env.TEST_POSTGRES_MODULE ?? import.meta.resolve("postgres");

/**
 * The child: `cut` keeps transactions and pipelined queries in flight until the parent cuts its
 * connections; `same-tick` closes the socket in the tick that buffered a write. Both then need the pool
 * to work again, and print one JSON line of what each query settled with.
 */
const CHILD = `
import net from "node:net";
const [moduleUrl, url, scenario] = process.argv.slice(1);
const { default: postgres } = await import(moduleUrl);
const settle = (p) => p.then(() => "ok", (e) => e?.code ?? String(e));
const out = {};
if (scenario === "cut") {
  const sql = postgres(url, { max: 8, connect_timeout: 5, onnotice() {}, connection: { application_name: "patch-test" } });
  // All eight connections open first, so every query below goes onto a socket rather than into the
  // pool's queue (queued ones would simply run after the reconnect).
  await Promise.all(Array.from({ length: 8 }, () => sql\`select pg_sleep(0.1)\`));
  const work = [];
  for (let i = 0; i < 4; i++) work.push(settle(sql.begin(async (t) => { await t\`select pg_sleep(20)\`; })));
  for (let i = 0; i < 40; i++) work.push(settle(sql\`select pg_sleep(20)\`));
  process.stdout.write("in flight\\n");
  out.settled = await Promise.all(work);
  // The rollbacks that begin() sends after the cut are what reach the closed socket.
  await new Promise((r) => setTimeout(r, 200));
  out.after = await settle(sql\`select 1\`);
  await sql.end({ timeout: 1 });
} else {
  const sockets = [];
  const { hostname, port } = new URL(url);
  const sql = postgres(url, {
    max: 1,
    connect_timeout: 3,
    onnotice() {},
    socket: () => { const s = net.connect(Number(port), hostname); sockets.push(s); return s; },
  });
  await sql\`select 1\`;
  // Started from an immediate, the query's write waits for the next loop iteration, while the socket
  // destroyed in onexecute (right after the bytes were buffered) closes in this iteration's close phase.
  await new Promise((r) => setImmediate(r));
  out.settled = [await settle(sql.unsafe("select 1", [], { onexecute: () => (sockets.at(-1).destroy(), true) }))];
  out.after = await settle(sql\`select 1\`);
  await sql.end({ timeout: 1 });
}
process.stdout.write(JSON.stringify(out) + "\\n");
`;

interface ChildResult {
  code: number | null;
  stdout: string;
  stderr: string;
  report: { settled: string[]; after: string } | undefined;
}

async function runChild(
  url: string,
  scenario: "cut" | "same-tick",
  onInFlight?: () => Promise<void>,
): Promise<ChildResult> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, MODULE, url, scenario], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  let signalled = false;
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
    if (!signalled && stdout.includes("in flight\n") && onInFlight) {
      signalled = true;
      onInFlight().catch((err: unknown) => {
        stderr += `parent: ${String(err)}\n`;
        child.kill("SIGKILL");
      });
    }
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(killer);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  let report: ChildResult["report"];
  try {
    report = JSON.parse(last);
  } catch {
    report = undefined;
  }
  return { code, stdout, stderr, report };
}

describe("postgres.js: a write after the socket closed settles its query", { concurrency: true }, () => {
  const baseline = handleBaseline();
  after(async () => {
    await assertNoOpenHandles(baseline);
  });

  test("connections cut with transactions and pipelined queries in flight: the child lives on", async () => {
    const database = await createTestDatabase();
    const proxy = await startProxy(database.url);
    const admin = postgres(database.url, { max: 1, onnotice: () => {} });
    try {
      const via = new URL(database.url);
      via.port = String(proxy.port);
      const result = await runChild(via.toString(), "cut", async () => {
        const db = new URL(database.url).pathname.slice(1);
        await waitFor(
          "every connection busy",
          async () => {
            const [row] = await admin<{ n: number }[]>`
              select count(*)::int as n from pg_stat_activity
              where datname = ${db} and application_name = 'patch-test' and query like '%pg_sleep%'`;
            return (row?.n ?? 0) >= 8;
          },
          20_000,
        );
        proxy.cut();
      });
      assert.equal(result.code, 0, `the child died:\n${result.stderr}`);
      assert.doesNotMatch(result.stderr, /Cannot read properties of null/);
      assert.ok(result.report, `no report from the child:\n${result.stdout}`);
      assert.equal(result.report.settled.length, 44);
      assert.deepEqual(new Set(result.report.settled), new Set(["CONNECTION_CLOSED"]));
      assert.equal(result.report.after, "ok", "the pool reconnects after the cut");
    } finally {
      await admin.end();
      await proxy.close();
      await database.drop();
    }
  });

  test("the socket closes in the tick that buffered a write: the query fails and the pool recovers", async () => {
    const database = await createTestDatabase();
    try {
      const result = await runChild(database.url, "same-tick");
      assert.equal(result.code, 0, `the child died:\n${result.stderr}`);
      assert.ok(result.report, `no report from the child:\n${result.stdout}`);
      assert.deepEqual(result.report.settled, ["CONNECTION_CLOSED"]);
      // Unpatched, the stale write timer keeps the reconnect's startup message from ever being sent.
      assert.equal(result.report.after, "ok", "the next query reconnects and runs");
    } finally {
      await database.drop();
    }
  });
});
