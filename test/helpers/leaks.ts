import { setTimeout as sleep } from "node:timers/promises";

/** Handle kinds that mean a test left a socket, server or child process open. */
const LEAKY = new Set(["TCPSocketWrap", "TCPServerWrap", "TLSWrap", "ProcessWrap", "PipeWrap"]);

function leakyCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (LEAKY.has(r)) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** What is open before a test starts (the test runner's own pipes); compare against it afterwards. */
export function handleBaseline(): Map<string, number> {
  return leakyCounts();
}

/**
 * Fails when more sockets, servers or child processes are open than at `baseline`. Closing is
 * asynchronous in several clients, so it waits up to `graceMs` (default 3 000) first.
 */
export async function assertNoOpenHandles(baseline: Map<string, number>, graceMs = 3000): Promise<void> {
  const deadline = Date.now() + graceMs;
  let extra: string[] = [];
  for (;;) {
    extra = [...leakyCounts()]
      .filter(([k, n]) => n > (baseline.get(k) ?? 0))
      .map(([k, n]) => `${k} ×${n - (baseline.get(k) ?? 0)}`);
    if (extra.length === 0) return;
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  throw new Error(`test left open handles: ${extra.join(", ")}`);
}
