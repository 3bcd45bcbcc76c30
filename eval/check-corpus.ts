/**
 * Checks every labelled file in `eval/corpus/` against the form of `escalation-set.jsonl` and
 * LABELLING.md: the fields and their values, ids unique across the corpus and the original set, and the
 * split each id falls in. `node eval/check-corpus.ts` prints counts, or the problems and exits 1.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const DIR = new URL("./corpus/", import.meta.url).pathname;
const KINDS = { review: "rev", survey: "srv", conversation: "chat", forum: "forum", call: "call" } as const;
const LEVELS = ["none", "low", "medium", "high", "extreme"];
const INTENSITIES = ["low", "medium", "high", "extreme"];
const SHIFTS = ["sentiment degraded", "sentiment improved", "no change"];
const DOMAINS = ["saas", "retail", "telecom", "banking", "insurance", "travel", "healthcare", "utilities"];
const ACTORS: Record<string, string[]> = {
  conversation: ["user", "agent", "bot"],
  forum: ["user"],
  call: ["user", "agent"],
};

/** The split an id falls in, by the first byte of its SHA-256 (LABELLING.md, "Splits"). */
export function splitOf(id: string): "train" | "dev" | "test" {
  const byte = createHash("sha256").update(id).digest()[0] as number;
  return byte <= 153 ? "train" : byte <= 204 ? "dev" : "test";
}

type Item = Record<string, unknown>;

function problemsOf(item: Item): string[] {
  const p: string[] = [];
  const kind = item.kind as keyof typeof KINDS;
  if (!(kind in KINDS)) return [`kind ${JSON.stringify(item.kind)}`];
  if (typeof item.id !== "string" || !item.id.startsWith(`${KINDS[kind]}-`))
    p.push(`id must start ${KINDS[kind]}-`);
  if (!DOMAINS.includes(item.domain as string)) p.push(`domain ${JSON.stringify(item.domain)}`);
  if (!LEVELS.includes(item.escalation as string)) p.push(`escalation ${JSON.stringify(item.escalation)}`);
  if (!INTENSITIES.includes(item.intensity as string)) p.push(`intensity ${JSON.stringify(item.intensity)}`);
  if (!Array.isArray(item.tags) || item.tags.some((t) => typeof t !== "string"))
    p.push("tags must be strings");
  const single = kind === "review" || kind === "survey";
  if (single) {
    if (typeof item.text !== "string" || item.text.trim().length < 3) p.push("text required");
    if (item.messages !== undefined) p.push("no messages on single-text kinds");
    if (item.shift !== null) p.push("shift must be null");
    if (kind === "survey" && !/Q: .+ A: /s.test(String(item.text))) p.push("survey text is Q: … A: …");
  } else {
    const messages = item.messages as Array<{ actor: string; text: string }> | undefined;
    if (!Array.isArray(messages) || messages.length < 2 || messages.length > 12) p.push("2 to 12 messages");
    else {
      for (const m of messages) {
        if (!ACTORS[kind]?.includes(m.actor)) p.push(`actor ${JSON.stringify(m.actor)}`);
        if (typeof m.text !== "string" || m.text.trim() === "") p.push("message text required");
      }
      if (!messages.some((m) => m.actor === "user")) p.push("a user message");
    }
    if (item.text !== undefined) p.push("no text on multi-message kinds");
    if (!SHIFTS.includes(item.shift as string)) p.push(`shift ${JSON.stringify(item.shift)}`);
  }
  return p;
}

/** Every problem of the corpus files, and the counts of their items by level, kind, industry and split. */
export function checkCorpus(): {
  problems: string[];
  total: number;
  counts: Record<string, Map<string, number>>;
} {
  const seen = new Set<string>();
  for (const line of readFileSync(new URL("./escalation-set.jsonl", import.meta.url), "utf8").split("\n"))
    if (line.trim()) seen.add((JSON.parse(line) as Item).id as string);
  const problems: string[] = [];
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  const byLevel = new Map<string, number>();
  const byKind = new Map<string, number>();
  const byDomain = new Map<string, number>();
  const bySplit = new Map<string, number>();
  let total = 0;
  for (const file of readdirSync(DIR)
    .filter((f) => f.endsWith(".jsonl"))
    .sort()) {
    readFileSync(join(DIR, file), "utf8")
      .split("\n")
      .forEach((line, i) => {
        if (!line.trim()) return;
        let item: Item;
        try {
          item = JSON.parse(line) as Item;
        } catch (err) {
          problems.push(`${file}:${i + 1}: not JSON (${(err as Error).message})`);
          return;
        }
        for (const p of problemsOf(item)) problems.push(`${file}:${i + 1} ${String(item.id)}: ${p}`);
        const id = String(item.id);
        if (seen.has(id)) problems.push(`${file}:${i + 1}: id ${id} used twice`);
        seen.add(id);
        total++;
        count(byLevel, String(item.escalation));
        count(byKind, String(item.kind));
        count(byDomain, String(item.domain));
        count(bySplit, splitOf(id));
      });
  }
  return { problems, total, counts: { levels: byLevel, kinds: byKind, domains: byDomain, splits: bySplit } };
}

function main(): number {
  const { problems, total, counts } = checkCorpus();
  if (problems.length > 0) {
    for (const p of problems.slice(0, 50)) process.stderr.write(`${p}\n`);
    process.stderr.write(`${problems.length} problem(s)\n`);
    return 1;
  }
  const show = (m: Map<string, number> | undefined) => [...(m ?? [])].map(([k, v]) => `${k} ${v}`).join(", ");
  process.stdout.write(
    `${total} items\nlevels: ${show(counts.levels)}\nkinds: ${show(counts.kinds)}\ndomains: ${show(counts.domains)}\nsplits: ${show(counts.splits)}\n`,
  );
  return 0;
}

if (import.meta.main) process.exitCode = main();
