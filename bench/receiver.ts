/**
 * The receivers: plain HTTP servers on 127.0.0.1, one port per destination, in a process of their own so
 * their work does not share an event loop with what is measured. Run as a child of the bench
 * (`startReceivers`), it answers requests from the parent over IPC.
 *
 * A normal receiver answers 200 as soon as the request body is in; a hung one reads the request and never
 * answers. Each arrival is recorded with its time, its destination and, when its `Idempotency-Key` carries a
 * stamp (see marker.ts), its latency from enqueue. Arrivals are deduplicated by that key, because a retried
 * or re-run job sends the same alert again and only the first copy says when the alert got through.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { stampOf, wallNow } from "./marker.ts";
import { type Child, spawnNode } from "./proc.ts";

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface Progress {
  /** First arrivals (distinct Idempotency-Keys) at the destinations asked about. */
  unique: number;
  /** Every request, copies included. */
  arrivals: number;
  lastAt: number | null;
}

export interface Summary extends Progress {
  duplicates: number;
  perDestUnique: number[];
  perDestArrivals: number[];
  firstAt: number | null;
  /** When the n-th first arrival happened, if asked for and reached. */
  nthAt: number | null;
  /** Enqueue → arrival of first arrivals with a stamp, in ms. */
  latency: LatencySummary | null;
}

type Request =
  | { op: "listen"; count: number; hung: number[] }
  | { op: "reset" }
  | { op: "progress"; dests?: number[] }
  | { op: "summary"; dests?: number[]; nth?: number }
  | { op: "close" };

// ---------------------------------------------------------------- child side

function serve(): void {
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  // One entry per request, in arrival order; parallel arrays keep 100k arrivals cheap.
  let dest: number[] = [];
  let at: number[] = [];
  let latency: number[] = [];
  let first: boolean[] = [];
  let seen = new Set<string>();
  let uniqueByDest: number[] = [];
  let arrivalsByDest: number[] = [];

  const record = (d: number, req: IncomingMessage) => {
    const now = wallNow();
    const header = req.headers["idempotency-key"];
    const key = typeof header === "string" ? header : "";
    const isFirst = key === "" || !seen.has(key);
    if (key !== "") seen.add(key);
    const stamp = key === "" ? undefined : stampOf(key);
    dest.push(d);
    at.push(now);
    latency.push(stamp === undefined ? Number.NaN : now - stamp);
    first.push(isFirst);
    arrivalsByDest[d] = (arrivalsByDest[d] ?? 0) + 1;
    if (isFirst) uniqueByDest[d] = (uniqueByDest[d] ?? 0) + 1;
  };

  const reset = () => {
    dest = [];
    at = [];
    latency = [];
    first = [];
    seen = new Set();
    uniqueByDest = uniqueByDest.map(() => 0);
    arrivalsByDest = arrivalsByDest.map(() => 0);
  };

  const selected = (dests: number[] | undefined) => dests ?? uniqueByDest.map((_, i) => i);

  const progress = (dests: number[] | undefined): Progress => {
    const set = selected(dests);
    let lastAt: number | null = null;
    const wanted = new Set(set);
    for (let i = at.length - 1; i >= 0; i--) {
      if (wanted.has(dest[i] as number)) {
        lastAt = at[i] as number;
        break;
      }
    }
    return {
      unique: set.reduce((s, d) => s + (uniqueByDest[d] ?? 0), 0),
      arrivals: set.reduce((s, d) => s + (arrivalsByDest[d] ?? 0), 0),
      lastAt,
    };
  };

  const summary = (dests: number[] | undefined, nth: number | undefined): Summary => {
    const wanted = new Set(selected(dests));
    const lat: number[] = [];
    let firstAt: number | null = null;
    let nthAt: number | null = null;
    let count = 0;
    for (let i = 0; i < at.length; i++) {
      if (!wanted.has(dest[i] as number)) continue;
      firstAt ??= at[i] as number;
      if (!first[i]) continue;
      count++;
      if (count === nth) nthAt = at[i] as number;
      const l = latency[i] as number;
      if (!Number.isNaN(l)) lat.push(l);
    }
    const p = progress(dests);
    return {
      ...p,
      duplicates: p.arrivals - p.unique,
      perDestUnique: [...uniqueByDest],
      perDestArrivals: [...arrivalsByDest],
      firstAt,
      nthAt,
      latency: summarize(lat),
    };
  };

  const listen = async (count: number, hung: number[]): Promise<string[]> => {
    uniqueByDest = Array.from({ length: count }, () => 0);
    arrivalsByDest = Array.from({ length: count }, () => 0);
    const urls: string[] = [];
    for (let d = 0; d < count; d++) {
      const isHung = hung.includes(d);
      const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        req.resume();
        req.on("end", () => {
          record(d, req);
          if (!isHung) res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
        });
      });
      // The product cuts an attempt at 5 s; Node's own request timeouts must not answer for the hung one.
      server.requestTimeout = 0;
      server.keepAliveTimeout = 5000;
      server.on("connection", (s: Socket) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
      urls.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`);
    }
    return urls;
  };

  const close = async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  };

  process.on("disconnect", () => process.exit(0));
  process.on("message", (raw) => {
    const { id, ...req } = raw as Request & { id: number };
    const reply = (result: unknown) => process.send?.({ id, ok: true, result });
    const fail = (err: unknown) =>
      process.send?.({ id, ok: false, error: err instanceof Error ? err.message : String(err) });
    try {
      switch (req.op) {
        case "listen":
          listen(req.count, req.hung).then(reply, fail);
          return;
        case "reset":
          reset();
          reply(null);
          return;
        case "progress":
          reply(progress(req.dests));
          return;
        case "summary":
          reply(summary(req.dests, req.nth));
          return;
        case "close":
          close().then(
            () => {
              reply(null);
              process.disconnect();
            },
            (err) => fail(err),
          );
          return;
      }
    } catch (err) {
      fail(err);
    }
  });
}

/** Nearest-rank percentiles. */
export function summarize(values: number[]): LatencySummary | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    p50: rank(0.5),
    p90: rank(0.9),
    p99: rank(0.99),
    max: sorted[sorted.length - 1] as number,
    mean: sum / sorted.length,
  };
}

// ---------------------------------------------------------------- parent side

export interface Receivers {
  urls: string[];
  child: Child;
  reset(): Promise<void>;
  progress(dests?: number[]): Promise<Progress>;
  summary(dests?: number[], nth?: number): Promise<Summary>;
  close(): Promise<void>;
}

/** Starts the receiver process with `count` destinations; those listed in `hung` never answer. */
export async function startReceivers(count: number, hung: number[] = []): Promise<Receivers> {
  const child = spawnNode("receivers", [fileURLToPath(import.meta.url)], {}, { inheritOutput: true });
  const proc = child.proc;
  let next = 1;
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  proc.on("message", (raw) => {
    const msg = raw as { id: number; ok: boolean; result?: unknown; error?: string };
    const p = pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(`receivers: ${msg.error}`));
  });
  proc.on("exit", (code, signal) => {
    for (const p of pending.values()) p.reject(new Error(`receiver process exited (${code ?? signal})`));
    pending.clear();
  });
  const call = <T>(req: Request): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!proc.connected) return reject(new Error("receiver process is not running"));
      const id = next++;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      proc.send({ id, ...req });
    });
  try {
    const urls = await call<string[]>({ op: "listen", count, hung });
    return {
      urls,
      child,
      reset: () => call<void>({ op: "reset" }),
      progress: (dests) => call<Progress>({ op: "progress", dests }),
      summary: (dests, nth) => call<Summary>({ op: "summary", dests, nth }),
      async close() {
        if (proc.connected) await call<void>({ op: "close" }).catch(() => {});
        await child.stop(3000);
      },
    };
  } catch (err) {
    await child.stop(1000);
    throw err;
  }
}

if (import.meta.main) serve();
