import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { resolve } from "node:path";
import { caFile } from "./env.ts";

const CLI = resolve("bin/escalation-shield.js");

export interface CliProcess {
  child: ChildProcess;
  /** Every line the process wrote to stdout and stderr so far. */
  output: string[];
  /** Sends `signal` and waits for the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `escalation-shield <args>` as a real child process with `env` (and the test CA trusted). */
export function startCli(args: string[], env: Record<string, string>): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? "", NODE_EXTRA_CA_CERTS: caFile(), ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let buf = "";
    stream?.on("data", (c: Buffer) => {
      buf += c.toString("utf8");
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      output.push(...lines);
    });
  }
  const exited = once(child, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  return {
    child,
    output,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const [code] = await exited;
      return code;
    },
  };
}

/** Runs `escalation-shield <args>` to completion; returns exit code, stdout and stderr. */
export async function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(args, env);
  let stdout = "";
  let stderr = "";
  p.child.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  p.child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const [code] = (await once(p.child, "exit")) as [number | null];
  return { code, stdout, stderr };
}
