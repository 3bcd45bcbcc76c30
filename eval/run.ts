/**
 * Scores the default analyzer on eval/escalation-set.jsonl.
 *
 * The set is split in two by a fixed hash of each item's text: the first byte of SHA-256 even goes to
 * the tune half (rules may be written against it), odd to the held-out half (never inspected while
 * writing rules). The headline figures are the held-out ones.
 *
 *   npm run eval:analyzer                      held-out and tune figures, writes eval/results.json
 *   npm run eval:analyzer -- --half tune       tune half only
 *   npm run eval:analyzer -- --half tune --errors   also lists the tune half's misses
 *   npm run eval:analyzer -- --file eval/tune-extra.jsonl [--errors]   an extra tuning file only
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type {
  AnalysisInput,
  EscalationLevel,
  IntensityLevel,
  SentimentShift,
} from "../src/analysis/analyzer.ts";
import { ESCALATION_LEVELS, INTENSITY_LEVELS, isHighOrAbove } from "../src/analysis/analyzer.ts";
import { createLexiconAnalyzer } from "../src/analysis/lexicon.ts";
import { librarySentiment } from "../src/analysis/sentiment.ts";
import type { MessageActor, SurveyAnswer } from "../src/ingestion/types.ts";

interface Item {
  id: string;
  kind: "review" | "conversation" | "survey" | "forum" | "call";
  text?: string;
  messages?: { actor: MessageActor; text: string }[];
  escalation: EscalationLevel;
  intensity: IntensityLevel;
  shift: SentimentShift | null;
  tags: string[];
}

type Half = "tune" | "held-out";

const here = new URL(".", import.meta.url);
const items: Item[] = readFileSync(new URL("escalation-set.jsonl", here), "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Item);

function itemText(item: Item): string {
  return item.text ?? (item.messages ?? []).map((m) => m.text).join("\n");
}

/** Fixed split: the first byte of SHA-256 of the item's text, even → tune, odd → held-out. */
function halfOf(item: Item): Half {
  const first = createHash("sha256").update(itemText(item)).digest()[0] as number;
  return first % 2 === 0 ? "tune" : "held-out";
}

/** Surveys are stored as "Q: ... A: ..." text; the product receives them as structured responses. */
function parseSurvey(text: string): SurveyAnswer[] {
  const out: SurveyAnswer[] = [];
  for (const m of text.matchAll(/Q:\s*([\s\S]*?)\s*A:\s*([\s\S]*?)(?=\s*Q:|$)/g)) {
    out.push({ question: (m[1] as string).trim(), answer: [(m[2] as string).trim()], selectedOptions: [] });
  }
  return out.length > 0 ? out : [{ question: "", answer: [text], selectedOptions: [] }];
}

function toInput(item: Item): AnalysisInput {
  const messages = item.messages ?? [];
  switch (item.kind) {
    case "review":
      return { type: "REVIEW", content: { kind: "text", text: item.text ?? "" } };
    case "survey":
      return { type: "SURVEY", content: { kind: "survey", responses: parseSurvey(item.text ?? "") } };
    case "conversation":
      return { type: "CONVERSATION", content: { kind: "messages", messages } };
    case "forum":
      return { type: "FORUM_CONVERSATION_THREAD", content: { kind: "messages", messages } };
    case "call":
      // Calls reach the product as audio with a transcript, so they exercise that path.
      return {
        type: "AUDIO_RECORDING",
        content: {
          kind: "audio",
          audioUrl: `https://example.invalid/${item.id}.wav`,
          transcript: messages.map((m) => ({
            actor: m.actor,
            actorId: null,
            text: m.text,
            startMs: null,
            endMs: null,
          })),
        },
      };
  }
}

/** What the sentiment library alone sees: the customer's own words. */
function customerText(item: Item): string {
  if (item.text !== undefined)
    return item.kind === "survey" ? item.text.replace(/Q:[\s\S]*?A:/g, " ") : item.text;
  return (item.messages ?? [])
    .filter((m) => m.actor === "user")
    .map((m) => m.text)
    .join("\n");
}

interface Binary {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  precision: number;
  recall: number;
  f1: number;
}

function binary(pairs: { gold: boolean; pred: boolean }[]): Binary {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (const { gold, pred } of pairs) {
    if (gold && pred) tp++;
    else if (!gold && pred) fp++;
    else if (gold && !pred) fn++;
    else tn++;
  }
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { tp, fp, fn, tn, precision, recall, f1 };
}

const analyzer = createLexiconAnalyzer();
const rows = items.map((item) => {
  const a = analyzer.analyzeSync(toInput(item));
  return { item, half: halfOf(item), analysis: a, library: librarySentiment(customerText(item)) };
});
type Row = (typeof rows)[number];

/** The baseline's cut-off, chosen on the tune half only: the F1-best "sentiment below t" rule. */
function chooseThreshold(tune: Row[]): number {
  const candidates = [...new Set(tune.map((r) => r.library))].sort((a, b) => a - b).map((s) => s + 1e-9);
  let best = { t: 0, f1: -1, precision: 0 };
  for (const t of candidates) {
    const b = binary(tune.map((r) => ({ gold: isHighOrAbove(r.item.escalation), pred: r.library < t })));
    if (b.f1 > best.f1 || (b.f1 === best.f1 && b.precision > best.precision))
      best = { t, f1: b.f1, precision: b.precision };
  }
  return best.t;
}

function figures(subset: Row[], threshold: number) {
  const analyzerBinary = binary(
    subset.map((r) => ({
      gold: isHighOrAbove(r.item.escalation),
      pred: isHighOrAbove(r.analysis.escalation_level),
    })),
  );
  const baseline = binary(
    subset.map((r) => ({ gold: isHighOrAbove(r.item.escalation), pred: r.library < threshold })),
  );
  const confusion = ESCALATION_LEVELS.map((gold) =>
    ESCALATION_LEVELS.map(
      (pred) =>
        subset.filter((r) => r.item.escalation === gold && r.analysis.escalation_level === pred).length,
    ),
  );
  const exact =
    subset.filter((r) => r.item.escalation === r.analysis.escalation_level).length / subset.length;
  const intensity =
    subset.filter((r) => r.item.intensity === r.analysis.emotional_intensity_level).length / subset.length;
  const intensityConfusion = INTENSITY_LEVELS.map((gold) =>
    INTENSITY_LEVELS.map(
      (pred) =>
        subset.filter((r) => r.item.intensity === gold && r.analysis.emotional_intensity_level === pred)
          .length,
    ),
  );
  const multi = subset.filter((r) => r.item.shift !== null);
  const shift =
    multi.filter((r) => r.item.shift === r.analysis.sentiment_shift).length / Math.max(multi.length, 1);
  return {
    items: subset.length,
    high_or_above: analyzerBinary,
    baseline_high_or_above: baseline,
    escalation_exact_accuracy: exact,
    confusion_matrix: { labels: ESCALATION_LEVELS, rows_gold_columns_predicted: confusion },
    intensity_accuracy: intensity,
    intensity_confusion_matrix: { labels: INTENSITY_LEVELS, rows_gold_columns_predicted: intensityConfusion },
    shift_accuracy: shift,
    shift_items: multi.length,
  };
}

const pct = (n: number): string => n.toFixed(3);

function print(title: string, f: ReturnType<typeof figures>, threshold: number): void {
  const a = f.high_or_above;
  const b = f.baseline_high_or_above;
  console.log(`\n=== ${title} (${f.items} items) ===`);
  console.log('Binary "high or above" (label in {high, extreme}):');
  console.log("                      precision  recall  F1      tp  fp  fn  tn");
  console.log(
    `  analyzer lexicon-v1  ${pct(a.precision)}      ${pct(a.recall)}   ${pct(a.f1)}   ${String(a.tp).padStart(2)}  ${String(a.fp).padStart(2)}  ${String(a.fn).padStart(2)}  ${String(a.tn).padStart(2)}`,
  );
  console.log(
    `  baseline wink < ${threshold.toFixed(2).padStart(5)} ${pct(b.precision)}      ${pct(b.recall)}   ${pct(b.f1)}   ${String(b.tp).padStart(2)}  ${String(b.fp).padStart(2)}  ${String(b.fn).padStart(2)}  ${String(b.tn).padStart(2)}`,
  );
  console.log("Escalation confusion matrix (rows = label, columns = predicted):");
  console.log(`  ${"".padEnd(9)}${ESCALATION_LEVELS.map((l) => l.padStart(8)).join("")}`);
  f.confusion_matrix.rows_gold_columns_predicted.forEach((row, i) => {
    console.log(
      `  ${(ESCALATION_LEVELS[i] as string).padEnd(9)}${row.map((n) => String(n).padStart(8)).join("")}`,
    );
  });
  console.log(`Escalation exact accuracy: ${pct(f.escalation_exact_accuracy)}`);
  console.log(`Intensity accuracy:        ${pct(f.intensity_accuracy)}  (rows = label, columns = predicted)`);
  console.log(`  ${"".padEnd(9)}${INTENSITY_LEVELS.map((l) => l.padStart(8)).join("")}`);
  f.intensity_confusion_matrix.rows_gold_columns_predicted.forEach((row, i) => {
    console.log(
      `  ${(INTENSITY_LEVELS[i] as string).padEnd(9)}${row.map((n) => String(n).padStart(8)).join("")}`,
    );
  });
  console.log(`Shift accuracy:            ${pct(f.shift_accuracy)} (${f.shift_items} multi-message items)`);
}

const { values } = parseArgs({
  options: {
    half: { type: "string" },
    errors: { type: "boolean", default: false },
    file: { type: "string" },
  },
});
const only = values.half as Half | undefined;
if (only !== undefined && only !== "tune" && only !== "held-out") {
  console.error('--half must be "tune" or "held-out"');
  process.exit(2);
}
if (values.errors && only !== "tune" && values.file === undefined) {
  // Listing held-out misses would invite rules written against them, which would make its figures lie.
  console.error("--errors is only available with --half tune");
  process.exit(2);
}

const tune = rows.filter((r) => r.half === "tune");
const heldOut = rows.filter((r) => r.half === "held-out");
const threshold = chooseThreshold(tune);

if (values.file !== undefined) {
  // An extra, separately written tuning file: scored whole, misses listed with --errors.
  const extra: Item[] = readFileSync(values.file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Item);
  const extraRows = extra.map((item) => ({
    item,
    half: "tune" as Half,
    analysis: analyzer.analyzeSync(toInput(item)),
    library: librarySentiment(customerText(item)),
  }));
  print(`EXTRA file ${values.file}`, figures(extraRows, threshold), threshold);
  if (values.errors) {
    console.log("\nMisses on the binary high-or-above call (label → predicted):");
    for (const r of extraRows) {
      const a = r.analysis;
      if (isHighOrAbove(r.item.escalation) === isHighOrAbove(a.escalation_level)) continue;
      console.log(
        `${r.item.id.padEnd(7)} ${r.item.escalation}→${a.escalation_level}  ${itemText(r.item).replace(/\n/g, " / ").slice(0, 150)}  [${a.cues.join(" | ")}]`,
      );
    }
  }
  process.exit(0);
}

if (only === "tune") {
  print("TUNE half (rules were written against these)", figures(tune, threshold), threshold);
  if (values.errors) {
    console.log("\nTune-half misses (label → predicted):");
    for (const r of tune) {
      const a = r.analysis;
      const wrong =
        r.item.escalation !== a.escalation_level ||
        r.item.intensity !== a.emotional_intensity_level ||
        r.item.shift !== a.sentiment_shift;
      if (!wrong) continue;
      console.log(
        `${r.item.id.padEnd(10)} esc ${r.item.escalation}→${a.escalation_level}  int ${r.item.intensity}→${a.emotional_intensity_level}  shift ${r.item.shift}→${a.sentiment_shift}  s=${a.sentiment}  [${a.cues.join(" | ")}]`,
      );
    }
  }
} else if (only === "held-out") {
  print("HELD-OUT half", figures(heldOut, threshold), threshold);
} else {
  const held = figures(heldOut, threshold);
  const tuned = figures(tune, threshold);
  print("HELD-OUT half (headline; never inspected while writing rules)", held, threshold);
  print("TUNE half (rules were written against these)", tuned, threshold);
  const results = {
    analyzer: analyzer.name,
    split: "sha256(text)[0] even → tune, odd → held-out",
    baseline: `wink-nlp sentiment of the customer's text < ${threshold.toFixed(4)} (threshold chosen on the tune half)`,
    held_out: held,
    tune: tuned,
  };
  writeFileSync(new URL("results.json", here), `${JSON.stringify(results, null, 2)}\n`);
  console.log("\nWrote eval/results.json");
}
