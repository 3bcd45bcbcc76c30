import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = fileURLToPath(new URL("../bin/escalation-shield.js", import.meta.url));
const EXIT_GUARD = fileURLToPath(new URL("./exit-with-parent.ts", import.meta.url));

/** Every child still running, so an exiting bench never leaves one behind (see the exit hook below). */
const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of running) c.kill("SIGKILL");
});

export interface Child {
  proc: ChildProcess;
  name: string;
  /** The last lines the child wrote (stdout and stderr), for saying why it failed. */
  tail(): string[];
  /** Resolves when a line matches `pattern`; rejects when the child exits first or `ms` pass. */
  waitForLine(pattern: RegExp, ms: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

const TAIL_LINES = 60;

/**
 * Starts a Node child on the same binary as the bench (`process.execPath`: Node 24, whatever `node` is on
 * PATH). It always gets an IPC channel: children run the exit guard or listen to it themselves, so a bench
 * killed hard does not leave servers or workers running.
 */
export function spawnNode(
  name: string,
  args: string[],
  env: Record<string, string>,
  options: { inheritOutput?: boolean } = {},
): Child {
  const proc = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: [
      "ignore",
      options.inheritOutput ? "inherit" : "pipe",
      options.inheritOutput ? "inherit" : "pipe",
      "ipc",
    ],
  });
  running.add(proc);
  const lines: string[] = [];
  const watchers: { pattern: RegExp; resolve(): void }[] = [];
  for (const stream of [proc.stdout, proc.stderr]) {
    let buf = "";
    stream?.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      const parts = buf.split("\n");
      buf = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (lines.length > TAIL_LINES) lines.shift();
        for (const w of [...watchers]) if (w.pattern.test(line)) w.resolve();
      }
    });
  }
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once("exit", () => resolve());
  });
  void exited.then(() => running.delete(proc));
  // An IPC channel to a child that died reports EPIPE here; the exit itself is what callers act on.
  proc.on("error", () => {});
  return {
    proc,
    name,
    tail: () => [...lines],
    waitForLine(pattern, ms) {
      return new Promise<void>((resolve, reject) => {
        if (lines.some((l) => pattern.test(l))) return resolve();
        const timer = setTimeout(
          () => done(new Error(`${name}: no line matching ${pattern} within ${ms} ms`)),
          ms,
        );
        const watcher = { pattern, resolve: () => done() };
        const onExit = () =>
          done(
            new Error(
              `${name} exited (code ${proc.exitCode}) before it was ready: ${lines.slice(-5).join(" | ")}`,
            ),
          );
        function done(err?: Error) {
          clearTimeout(timer);
          watchers.splice(watchers.indexOf(watcher), 1);
          proc.off("close", onExit);
          if (err) reject(err);
          else resolve();
        }
        watchers.push(watcher);
        proc.once("close", onExit);
      });
    },
    async stop(graceMs = 10_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `escalation-shield <args>` as users run it, with the exit guard preloaded. */
export function spawnProduct(name: string, args: string[], env: Record<string, string>): Child {
  return spawnNode(name, ["--import", EXIT_GUARD, CLI, ...args], env);
}

/** Waits for a child's exit, for code that must not continue while it runs. */
export async function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, "exit");
}
