/**
 * `npm run bench` (`npm run bench -- --only A,D` for a subset). Runs the parts one after the other, each
 * with its own database, queue prefix, receivers and time limit, prints a table and writes
 * bench/results/latest.json. See bench/README.md for what each part measures.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runBaseline } from "./baseline.ts";
import { cpuText } from "./cpu.ts";
import { startProduct, steady, sustained } from "./delivery.ts";
import { runFullPath } from "./full-path.ts";
import {
  CONCURRENCY,
  cleanUpOnSignals,
  fmtInt,
  fmtMs,
  fmtRate,
  type PartContext,
  type PartOutcome,
  round,
  runPart,
} from "./lib.ts";
import { type LatencySummary, type Receivers, startReceivers } from "./receiver.ts";
import { runRedisMemory } from "./redis-memory.ts";

const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));
const LATEST = `${RESULTS_DIR}latest.json`;

const PARTS = ["A", "B", "C", "D", "E"] as const;
type PartId = (typeof PARTS)[number];

const ALERTS = 20_000;
const BATCH = 500;
const DESTINATIONS = 10;

/** Hard limits per part, set-up and clean-up included. */
const LIMIT_MS: Record<PartId, number> = { A: 120_000, B: 190_000, C: 70_000, D: 60_000, E: 100_000 };
/** Whatever the limits add up to, the whole run stops within this. */
const BUDGET_MS = 570_000;
/** How long a part waits for arrivals before reporting what it got as incomplete. */
const WAIT_MS: Record<"baseline" | "product" | "B" | "E", number> = {
  baseline: 30_000,
  product: 60_000,
  B: 160_000,
  E: 75_000,
};
const STEADY_SECONDS = 30;

interface Row {
  part: string;
  measure: string;
  value: string;
  target?: string;
  verdict?: string;
}

interface PartReport {
  title: string;
  ok: boolean;
  error?: string;
  seconds: number;
  cleanupErrors: string[];
  metrics: Record<string, number | string | boolean | null>;
  details?: unknown;
}

const rows: Row[] = [];
const report: Record<string, PartReport> = {};

function load1(): number {
  return round(os.loadavg()[0] ?? 0, 2);
}

function verdict(meets: boolean | null): string {
  return meets === null ? "n/a" : meets ? "meets" : "MISSES";
}

function record<T>(
  id: PartId,
  title: string,
  outcome: PartOutcome<T>,
  describe: (value: T) => { metrics: PartReport["metrics"]; rows: Omit<Row, "part">[]; details?: unknown },
): T | undefined {
  const base = {
    title,
    ok: outcome.ok,
    seconds: outcome.seconds,
    cleanupErrors: outcome.cleanupErrors,
  };
  for (const e of outcome.cleanupErrors) process.stderr.write(`  [${id}] clean-up problem: ${e}\n`);
  if (!outcome.ok) {
    report[id] = { ...base, error: outcome.error, metrics: {} };
    rows.push({ part: id, measure: `${title}: FAILED`, value: outcome.error });
    process.stderr.write(`part ${id} failed after ${outcome.seconds} s: ${outcome.error}\n`);
    return undefined;
  }
  const d = describe(outcome.value);
  report[id] = { ...base, metrics: d.metrics, details: d.details };
  for (const r of d.rows) rows.push({ part: id, ...r });
  process.stderr.write(`part ${id} done in ${outcome.seconds} s\n`);
  return outcome.value;
}

/** A's product delivery rate, the reference of B and C; kept in every results file so subsets can chain. */
interface Reference {
  aProductRate: number;
  measuredAt: string;
}

/** The reference of the previous bench/results/latest.json, for B and C when A is not part of this run. */
function earlierReference(): Reference | undefined {
  if (!existsSync(LATEST)) return undefined;
  try {
    const prev = JSON.parse(readFileSync(LATEST, "utf8")) as { reference?: Partial<Reference> };
    const r = prev.reference;
    return typeof r?.aProductRate === "number" && r.aProductRate > 0 && typeof r.measuredAt === "string"
      ? { aProductRate: r.aProductRate, measuredAt: r.measuredAt }
      : undefined;
  } catch {
    return undefined;
  }
}

async function withReceivers(ctx: PartContext, hung: number[], count = DESTINATIONS): Promise<Receivers> {
  const receivers = await startReceivers(count, hung);
  ctx.defer("stop the receivers", () => receivers.close());
  return receivers;
}

/**
 * A percentile as a figure when enough alerts arrived to know it; otherwise the alerts still missing (each
 * slower than `waitedMs`) put it above that bound, and the figure over arrivals alone would flatter.
 */
function quantile(
  latency: LatencySummary | null,
  q: "p50" | "p99",
  missing: number,
  total: number,
  waitedMs: number,
): { ms: number | null; lowerBoundMs: number | null; text: string } {
  const unknownBeyond = q === "p50" ? 0.5 : 0.01;
  if (total > 0 && missing / total > unknownBeyond) {
    return {
      ms: null,
      lowerBoundMs: waitedMs,
      text: `> ${fmtMs(waitedMs)} (${pct(missing, total)} never arrived)`,
    };
  }
  if (!latency) return { ms: null, lowerBoundMs: null, text: "n/a" };
  return { ms: latency[q], lowerBoundMs: null, text: fmtMs(latency[q]) };
}

function pct(n: number, total: number): string {
  return total > 0 ? `${round((100 * n) / total)} %` : "n/a";
}

let workerProcesses = 1;

async function main(): Promise<void> {
  cleanUpOnSignals();
  const { values } = parseArgs({
    options: { only: { type: "string" }, workers: { type: "string" }, help: { type: "boolean" } },
  });
  if (values.help) {
    process.stdout.write("usage: npm run bench [-- --only A,B,C,D,E] [--workers N]\n");
    return;
  }
  // Delivery worker processes in A, B and C (default 1): `--workers 2` measures scale-out on one machine.
  workerProcesses = Number(values.workers ?? 1);
  if (!Number.isInteger(workerProcesses) || workerProcesses < 1 || workerProcesses > 8) {
    process.stderr.write("--workers takes a whole number from 1 to 8\n");
    process.exitCode = 2;
    return;
  }
  const only = (values.only ?? PARTS.join(","))
    .split(",")
    .map((s) => s.trim().toUpperCase())
    .filter((s) => s !== "");
  const unknown = only.filter((p) => !(PARTS as readonly string[]).includes(p));
  if (unknown.length > 0) {
    process.stderr.write(`--only: unknown part(s) ${unknown.join(", ")}; parts are ${PARTS.join(", ")}\n`);
    process.exitCode = 2;
    return;
  }
  const selected = PARTS.filter((p) => only.includes(p));
  const cores = os.availableParallelism();
  const machine = {
    cores,
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? "unknown",
    memoryGiB: round(os.totalmem() / 2 ** 30),
    loadAverageAtStart: load1(),
    deliveryWorkerProcesses: workerProcesses,
  };
  const startedAt = new Date();
  // A part that would not fit in what is left of the budget gets what is left, and none starts with under 20 s.
  const run = <T>(id: PartId, fn: (ctx: PartContext) => Promise<T>): Promise<PartOutcome<T>> => {
    const left = BUDGET_MS - (Date.now() - startedAt.getTime());
    if (left < 20_000) {
      const error = `not started: ${Math.round(left / 1000)} s left of the ${BUDGET_MS / 1000} s budget`;
      return Promise.resolve({ ok: false, error, seconds: 0, cleanupErrors: [] });
    }
    return runPart(id, Math.min(LIMIT_MS[id], left), fn);
  };
  process.stderr.write(
    `bench: parts ${selected.join(", ")} on ${cores} cores, Node ${process.version}; progress on stderr\n`,
  );

  let productRate: number | undefined;
  let productRateSource = "";
  let reference: Reference | undefined;

  if (selected.includes("A")) {
    const outcome = await run("A", async (ctx) => {
      const receivers = await withReceivers(ctx, []);
      ctx.note("baseline: BullMQ + undici alone");
      const baseline = await runBaseline(ctx, receivers, {
        jobs: ALERTS,
        batch: BATCH,
        deadlineMs: WAIT_MS.baseline,
      });
      ctx.note(`baseline: ${fmtRate(baseline.deliveryRate)}; product delivery path`);
      const setup = await startProduct(ctx, receivers, { workers: workerProcesses });
      const product = await sustained(ctx, receivers, setup, {
        alerts: ALERTS,
        batch: BATCH,
        deadlineMs: WAIT_MS.product,
      });
      return { baseline, product };
    });
    const a = record(
      "A",
      "throughput: product vs BullMQ + undici alone",
      outcome,
      ({ baseline, product }) => {
        const ratio = baseline.deliveryRate > 0 ? product.deliveryRate / baseline.deliveryRate : 0;
        const incomplete = (c: boolean, got: number, of: number) => (c ? "" : ` (INCOMPLETE: ${got}/${of})`);
        return {
          metrics: {
            baselineEnqueueRate: round(baseline.enqueueRate),
            baselineDeliveryRate: round(baseline.deliveryRate),
            baselineComplete: baseline.complete,
            productEnqueueRate: round(product.enqueueRate),
            productDeliveryRate: round(product.deliveryRate),
            productComplete: product.complete,
            productDeliveredRows: product.deliveredRows,
            ratio: round(ratio, 3),
          },
          details: { baseline, product },
          rows: [
            {
              measure: `baseline (BullMQ+undici, nothing stored) deliveries/s, ${fmtInt(ALERTS)} jobs`,
              value:
                fmtRate(baseline.deliveryRate) +
                incomplete(baseline.complete, baseline.receiver.unique, ALERTS),
            },
            { measure: "baseline enqueue rate (addBulk of 500)", value: fmtRate(baseline.enqueueRate) },
            {
              measure: `product enqueue rate (enqueueDeliveries, batches of ${BATCH})`,
              value: fmtRate(product.enqueueRate),
            },
            {
              measure: `product deliveries/s (first enqueue → ${fmtInt(ALERTS)}th arrival)`,
              value:
                fmtRate(product.deliveryRate) + incomplete(product.complete, product.receiver.unique, ALERTS),
            },
            {
              measure: "product / baseline",
              value: `${ratio.toFixed(2)} (${fmtRate(product.deliveryRate)} / ${fmtRate(baseline.deliveryRate)})`,
              target: "≥ 0.80",
              verdict: verdict(ratio >= 0.8),
            },
            {
              measure: "product: attempts stored as delivered / duplicates at receivers",
              value: `${fmtInt(product.deliveredRows)} / ${fmtInt(product.receiver.duplicates)}`,
            },
            { measure: "CPU cores busy, baseline run", value: cpuText(baseline.cpu, cores) },
            { measure: "CPU cores busy, product run", value: cpuText(product.cpu, cores) },
          ],
        };
      },
    );
    if (a && a.product.deliveryRate > 0) {
      productRate = a.product.deliveryRate;
      // An incomplete A still gives B and C a scale, but is not kept as the reference of later runs.
      productRateSource = a.product.complete ? "this run's A" : "this run's A (incomplete)";
      if (a.product.complete)
        reference = { aProductRate: round(productRate), measuredAt: startedAt.toISOString() };
    }
  }
  if (productRate === undefined && !selected.includes("A")) {
    reference = earlierReference();
    if (reference) {
      productRate = reference.aProductRate;
      productRateSource = `A of an earlier run (${reference.measuredAt})`;
    }
  }

  if (selected.includes("B")) {
    const healthy = Array.from({ length: DESTINATIONS - 1 }, (_, i) => i);
    const hungIndex = DESTINATIONS - 1;
    const awaited = (ALERTS * (DESTINATIONS - 1)) / DESTINATIONS;
    const outcome = await run("B", async (ctx) => {
      const receivers = await withReceivers(ctx, [hungIndex]);
      const setup = await startProduct(ctx, receivers, { workers: workerProcesses });
      return sustained(ctx, receivers, setup, {
        alerts: ALERTS,
        batch: BATCH,
        deadlineMs: WAIT_MS.B,
        dests: healthy,
        awaited,
      });
    });
    record("B", "one destination of 10 hung", outcome, (r) => {
      const ratio = productRate ? r.deliveryRate / productRate : null;
      const missing = r.awaited - Math.min(r.awaited, r.receiver.unique);
      // Each missing alert was enqueued by the end of enqueueing and had not arrived at the end of the wait.
      const waited = r.deliveryMs - r.enqueueMs;
      const p50 = quantile(r.receiver.latency, "p50", missing, r.awaited, waited);
      const p99 = quantile(r.receiver.latency, "p99", missing, r.awaited, waited);
      const hungArrivals = r.receiver.perDestArrivals[hungIndex] ?? 0;
      return {
        metrics: {
          healthyDeliveryRate: round(r.deliveryRate),
          healthyComplete: r.complete,
          healthyArrived: r.receiver.unique,
          ratioToA: ratio === null ? null : round(ratio, 3),
          aProductRate: productRate === undefined ? null : round(productRate),
          aProductRateSource: productRateSource || null,
          healthyP50Ms: p50.ms === null ? null : round(p50.ms, 2),
          healthyP50LowerBoundMs: p50.lowerBoundMs === null ? null : round(p50.lowerBoundMs),
          healthyP99Ms: p99.ms === null ? null : round(p99.ms, 2),
          healthyP99LowerBoundMs: p99.lowerBoundMs === null ? null : round(p99.lowerBoundMs),
          hungAttemptsReceived: hungArrivals,
          enqueueRate: round(r.enqueueRate),
        },
        details: r,
        rows: [
          {
            measure: `healthy deliveries/s (9 destinations, ${fmtInt(awaited)} alerts)`,
            value:
              fmtRate(r.deliveryRate) +
              (r.complete ? "" : ` (INCOMPLETE: ${fmtInt(r.receiver.unique)}/${fmtInt(awaited)})`),
          },
          {
            measure: "healthy rate / A product rate",
            value:
              ratio === null
                ? "n/a (no A product rate)"
                : `${ratio.toFixed(2)} (${fmtRate(r.deliveryRate)} / ${fmtRate(productRate ?? 0)}${
                    productRateSource.startsWith("this run's A") ? "" : ", A of an earlier run"
                  })`,
            target: "≥ 0.90",
            verdict: verdict(ratio === null ? null : ratio >= 0.9),
          },
          { measure: "healthy p50 enqueue → arrival", value: p50.text },
          { measure: "healthy p99 enqueue → arrival", value: p99.text },
          {
            measure: "attempts that reached the hung destination (5 s each)",
            value: fmtInt(hungArrivals),
          },
          { measure: "CPU cores busy", value: cpuText(r.cpu, cores) },
        ],
      };
    });
  }

  if (selected.includes("C")) {
    const rate = productRate ? Math.max(1, Math.round(productRate / 2)) : 100;
    const source = productRate ? `half of ${productRateSource}` : "no A product rate known: default";
    const outcome = await run("C", async (ctx) => {
      const receivers = await withReceivers(ctx, []);
      const setup = await startProduct(ctx, receivers, { workers: workerProcesses });
      ctx.note(`warm-up: 2 s at ${rate}/s`);
      await steady(ctx, receivers, setup, { rate, seconds: 2, drainMs: 10_000, tagSuffix: "w" });
      ctx.note(`steady: ${STEADY_SECONDS} s at ${rate}/s`);
      return steady(ctx, receivers, setup, {
        rate,
        seconds: STEADY_SECONDS,
        drainMs: 15_000,
        tagSuffix: "m",
      });
    });
    record("C", "latency under a steady load", outcome, (r) => {
      const l = r.receiver.latency;
      const p50 = quantile(l, "p50", r.missing, r.sent, r.missingWaitedMs);
      const p99 = quantile(l, "p99", r.missing, r.sent, r.missingWaitedMs);
      return {
        metrics: {
          targetRate: r.targetRate,
          rateSource: source,
          achievedEnqueueRate: round(r.achievedRate),
          sent: r.sent,
          arrived: r.arrived,
          missing: r.missing,
          p50Ms: p50.ms === null ? null : round(p50.ms, 2),
          p90Ms: l ? round(l.p90, 2) : null,
          p99Ms: p99.ms === null ? null : round(p99.ms, 2),
          p99LowerBoundMs: p99.lowerBoundMs === null ? null : round(p99.lowerBoundMs),
          maxMs: l ? round(l.max, 2) : null,
        },
        details: r,
        rows: [
          {
            measure: `steady load for ${r.seconds} s (${source})`,
            value: `${fmtRate(r.achievedRate)} (target ${fmtRate(r.targetRate)}), ${fmtInt(r.sent)} alerts`,
          },
          { measure: "p50 enqueue → arrival", value: p50.text },
          {
            measure: "p99 enqueue → arrival",
            value: p99.ms !== null && l ? `${p99.text} (max ${fmtMs(l.max)})` : p99.text,
            target: "≤ 25 ms",
            verdict: verdict(p99.ms !== null ? p99.ms <= 25 : p99.lowerBoundMs !== null ? false : null),
          },
          ...(r.missing > 0
            ? [
                {
                  measure: "alerts not arrived after the 15 s drain",
                  value: `${fmtInt(r.missing)} (${pct(r.missing, r.sent)})`,
                },
              ]
            : []),
          { measure: "CPU cores busy", value: cpuText(r.cpu, cores) },
        ],
      };
    });
  }

  if (selected.includes("D")) {
    const outcome = await run("D", (ctx) => runRedisMemory(ctx, { deliveries: 100_000, batch: 1000 }));
    record("D", "Redis memory per pending delivery", outcome, (r) => ({
      metrics: {
        deliveries: r.deliveries,
        usedMemoryBefore: r.usedBefore,
        usedMemoryAfter: r.usedAfter,
        bytesPerDelivery: round(r.bytesPerDelivery),
        sampleJobHashBytes: r.sampleJobBytes,
        pendingJobs: r.waitingJobs,
        keys: r.keysAfter,
      },
      details: r,
      rows: [
        {
          measure: `Redis used_memory per pending delivery (${fmtInt(r.deliveries)} pending)`,
          value: `${fmtInt(r.bytesPerDelivery)} B (${fmtInt((r.usedAfter - r.usedBefore) / 2 ** 20)} MiB in all)`,
          target: "≤ 1,024 B",
          verdict: verdict(r.bytesPerDelivery <= 1024),
        },
        {
          measure: "jobs pending in Redis / MEMORY USAGE of one job hash",
          value: `${fmtInt(r.waitingJobs)} / ${r.sampleJobBytes === null ? "n/a" : `${fmtInt(r.sampleJobBytes)} B`}`,
        },
      ],
    }));
  }

  if (selected.includes("E")) {
    const outcome = await run("E", async (ctx) => {
      const receivers = await withReceivers(ctx, [], 1);
      return runFullPath(ctx, receivers, { batches: 100, size: 100, deadlineMs: WAIT_MS.E });
    });
    record("E", "full path: ingest → analysis → evaluation → delivery", outcome, (r) => ({
      metrics: {
        records: r.records,
        ingestAcceptRate: round(r.post.acceptRate),
        fullPathRate: round(r.fullRate),
        complete: r.complete,
        alertsCreated: r.alertsCreated,
        alertsArrived: r.receiver.unique,
        postConcurrency: r.post.concurrency,
      },
      details: r,
      rows: [
        {
          measure: `ingestion accepted (100 × 100 records, ${r.post.concurrency} POSTs in flight)`,
          value: fmtRate(r.post.acceptRate),
        },
        {
          measure: "records/s, first POST → last alert arrival",
          value:
            fmtRate(r.fullRate) +
            (r.complete ? "" : ` (INCOMPLETE: ${fmtInt(r.receiver.unique)}/${fmtInt(r.records)} alerts)`),
        },
        {
          measure: "alerts created / arrived",
          value: `${fmtInt(r.alertsCreated)} / ${fmtInt(r.receiver.unique)}`,
        },
        { measure: "CPU cores busy", value: cpuText(r.cpu, cores) },
      ],
    }));
  }

  const finishedAt = new Date();
  const results = {
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    totalSeconds: round((finishedAt.getTime() - startedAt.getTime()) / 1000),
    machine,
    settings: {
      parts: selected,
      alerts: ALERTS,
      enqueueBatch: BATCH,
      destinations: DESTINATIONS,
      deliveryConcurrency: CONCURRENCY,
      deliveryWorkerProcesses: 1,
      steadySeconds: STEADY_SECONDS,
      limitsMs: LIMIT_MS,
    },
    reference: reference ?? null,
    parts: report,
    table: rows,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(LATEST, `${JSON.stringify(results, null, 2)}\n`);

  process.stdout.write(
    `\nEscalation Shield bench: ${cores} cores (os.availableParallelism), Node ${process.version}, ` +
      `${machine.platform}, ${machine.cpu}; load average (1 min) before the run ${machine.loadAverageAtStart}\n` +
      `DELIVERY_CONCURRENCY=${CONCURRENCY}, ${workerProcesses} delivery worker process(es), ${DESTINATIONS} loopback HTTP receivers ` +
      `in their own process; ${results.totalSeconds} s in all\n` +
      `CPU cores busy = CPU seconds per wall second during a measurement; the whole machine less the rest is ` +
      `Redis, Postgres' own processes and any other work\n\n`,
  );
  process.stdout.write(`${table(rows)}\n\n`);
  for (const id of selected) {
    const p = report[id];
    if (p && !p.ok) process.stdout.write(`part ${id} FAILED (${p.seconds} s): ${p.error}\n`);
  }
  process.stdout.write(`results: ${LATEST}\n`);
  if (selected.some((id) => !report[id]?.ok)) process.exitCode = 1;
}

function table(all: Row[]): string {
  const head: Row = {
    part: "part",
    measure: "measure",
    value: "value",
    target: "target",
    verdict: "verdict",
  };
  const cells = [head, ...all].map((r) => [r.part, r.measure, r.value, r.target ?? "", r.verdict ?? ""]);
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(cells[0] ?? []), rule, ...cells.slice(1).map(line)].join("\n");
}

await main();
