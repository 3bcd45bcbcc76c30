/**
 * Where the CPU went during a measurement, in cores busy (CPU seconds / wall seconds), from /proc on Linux.
 * On two cores this says whether a figure is bounded by the product, by Postgres or by the bench itself
 * (a baseline bounded by its receivers would understate what BullMQ + undici can do).
 */
import { readdirSync, readFileSync } from "node:fs";

/** USER_HZ: 100 on every Linux this runs on; /proc reports CPU time in these ticks. */
const TICKS_PER_SECOND = 100;

export type CpuSource =
  /** A process by pid. */
  | { name: string; pid: number | undefined }
  /** Postgres backends serving one database, found by their process title. */
  | { name: string; database: string }
  /** This process. */
  | { name: string; self: true }
  /** Every process on the machine (/proc/stat): what the others leave is what else was running. */
  | { name: string; machine: true };

function ticksOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

function backendsOf(database: string): Map<number, number> {
  const found = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // A backend's title is "postgres: <cluster>: <user> <database> <client> <state>".
      const title = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (!title.startsWith("postgres:") || !title.includes(` ${database} `)) continue;
      const ticks = ticksOf(Number(entry));
      if (ticks !== undefined) found.set(Number(entry), ticks);
    } catch {
      // The process ended while we looked, or is not ours to read.
    }
  }
  return found;
}

function machineTicks(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    // cpu user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return [user, nice, system, irq, softirq, steal].reduce<number>((s, v) => s + (v ?? 0), 0);
  } catch {
    return undefined;
  }
}

function sample(source: CpuSource): Map<number, number> {
  if ("machine" in source) {
    const ticks = machineTicks();
    return ticks === undefined ? new Map() : new Map([[0, ticks]]);
  }
  if ("self" in source) {
    const u = process.cpuUsage();
    return new Map([[0, ((u.user + u.system) / 1e6) * TICKS_PER_SECOND]]);
  }
  if ("database" in source) return backendsOf(source.database);
  const ticks = source.pid === undefined ? undefined : ticksOf(source.pid);
  return ticks === undefined ? new Map() : new Map([[source.pid as number, ticks]]);
}

export interface CpuMeter {
  /** Cores busy per source since the meter started; null where /proc could not tell. */
  stop(): Record<string, number | null>;
}

export function startCpuMeter(measured: CpuSource[]): CpuMeter {
  const sources: CpuSource[] = [...measured, { name: MACHINE, machine: true }];
  const started = performance.now();
  const before = sources.map(sample);
  return {
    stop() {
      const seconds = (performance.now() - started) / 1000;
      const out: Record<string, number | null> = {};
      sources.forEach((source, i) => {
        const after = sample(source);
        if (after.size === 0) {
          out[source.name] = null;
          return;
        }
        let ticks = 0;
        // A backend that appeared during the window counts from zero: it started within it.
        for (const [pid, t] of after) ticks += t - (before[i]?.get(pid) ?? 0);
        out[source.name] = Math.round((ticks / TICKS_PER_SECOND / seconds) * 100) / 100;
      });
      return out;
    },
  };
}

/** Every meter also reads the whole machine, under this name. */
export const MACHINE = "machine";

/** "worker 0.95, postgres 0.60, …; machine 1.80 of 2" for the table. */
export function cpuText(cores: Record<string, number | null>, total: number): string {
  const fmt = (v: number | null | undefined) => (v === null || v === undefined ? "n/a" : v.toFixed(2));
  const parts = Object.entries(cores)
    .filter(([name]) => name !== MACHINE)
    .map(([name, v]) => `${name} ${fmt(v)}`);
  return `${parts.join(", ")}; whole machine ${fmt(cores[MACHINE])} of ${total}`;
}
