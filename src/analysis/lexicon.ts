import type { RecordContent, TranscriptUnit } from "../ingestion/types.ts";
import type { Analysis, AnalysisInput, Analyzer, EscalationLevel, SentimentShift } from "./analyzer.ts";
import { ESCALATION_LEVELS } from "./analyzer.ts";
import { type Cue, cueFloor, findCues, type LevelNumber } from "./cues.ts";
import { intensityLevel, intensityScore } from "./intensity.ts";
import { analyzeSentiment } from "./sentiment.ts";
import { sentimentShift } from "./shift.ts";
import { capsStats, isQuestion, normalize, stripQuotes } from "./text.ts";

/** One piece of customer text: a review, a survey answer, a message or a transcript unit. */
interface Unit {
  text: string;
  index: number | null;
}

interface UnitVerdict extends Unit {
  cues: Cue[];
  level: LevelNumber;
  sentiment: number;
  intensity: number;
  resolved: boolean;
  /** Whether a cue that a later thank-you cannot undo was raised (legal, safety, ...). */
  lasting: boolean;
  sarcasm: boolean;
  slangPraise: boolean;
  styleCues: string[];
}

const CUSTOMER_ACTOR = /^(user|customer|caller|client|consumer|member|patient|guest|buyer)$/i;
const AGENT_ACTOR =
  /^(agent|rep|representative|support|operator|bot|assistant|ivr|system|advisor|adviser|staff|employee|host|moderator|admin)$/i;

/** Transcript units spoken by the customer: named customers, or everyone but agents when unnamed. */
function customerUnits(transcript: readonly TranscriptUnit[]): Unit[] {
  const named = transcript.some((u) => CUSTOMER_ACTOR.test(u.actor.trim()));
  const units: Unit[] = [];
  transcript.forEach((u, index) => {
    const actor = u.actor.trim();
    const isCustomer = named ? CUSTOMER_ACTOR.test(actor) : !AGENT_ACTOR.test(actor);
    if (isCustomer && u.text.trim()) units.push({ text: u.text, index });
  });
  return units;
}

/** A 0-10 answer to a "would you recommend" style question, as a cue. */
function scoreCue(question: string, answer: string): Cue | null {
  if (!/recommend|likely|scale|rate|score|satisf/i.test(question)) return null;
  const m = /^\s*(\d{1,2})(\s*\/\s*10)?\s*(\.|,|$)/.exec(answer);
  if (!m) return null;
  const n = Number(m[1]);
  // 0-4 is a detractor on any reading of the scale; 5 and 6 are too mild to raise the level alone.
  if (n > 4) return null;
  return { kind: "frustration", level: 2, label: `detractor score ${n}/10` };
}

const POLITE =
  /\b(please|thank you|thanks|grateful|appreciate|respectfully|kind regards|i understand|not upset|with respect|i'?d prefer|i would prefer|i'?d rather|good (morning|afternoon|evening)|i'?d welcome|i would welcome|with regret)\b/gi;

const NON_RISK = new Set<Cue["kind"]>(["resolution", "polite-thanks"]);
/** Cue kinds that a later thank-you cannot take back: a filed complaint or an injury stays. */
const LASTING = new Set<Cue["kind"]>(["legal", "regulator", "police", "safety", "security"]);

/** Level, mood and intensity of one piece of customer text on its own. */
function judgeUnit(unit: Unit, extraCues: Cue[] = []): UnitVerdict {
  const text = normalize(unit.text);
  const sent = analyzeSentiment(stripQuotes(text));
  const cues = [...findCues(text), ...extraCues];
  const risk = cues.filter((c) => !NON_RISK.has(c.kind));
  const floor = cueFloor(risk);
  const hasMinor = risk.some((c) => c.kind === "minor");
  const s = sent.score;
  // A question's wording ("what are the limits?") says little about mood unless it is harsh.
  const negativeClauses = sent.clauses.filter((c) => c.score <= (isQuestion(c.text) ? -0.5 : -0.25)).length;

  // Without a cue, the level comes from how negative the customer is: nothing negative is no
  // action, one sour note is routine, sustained negativity is real frustration.
  let base: LevelNumber;
  if (negativeClauses === 0 || s >= 0.25) base = 0;
  else if (s <= -0.3 && negativeClauses >= 2) base = 2;
  else base = 1;
  if (hasMinor && floor <= 1 && base > 1) base = 1;
  let level = Math.max(base, floor) as LevelNumber;

  const stripped = stripQuotes(text);
  let intensity = intensityScore(stripped, s);
  // A threat made in fury needs a human now, not soon.
  if (level === 3 && intensity >= 4.5 && s < -0.2) level = 4;
  // Stakes raise the temperature of a message and courtesy lowers it, whatever the words' polarity.
  if (level >= 3) intensity += 1.3;
  else if (level === 2) intensity += 0.4;
  if (/\b(right now|immediately|asap|today|now)\b/i.test(stripped)) intensity += 0.4;
  if (risk.some((c) => c.kind === "safety" || c.kind === "security")) intensity += 1;
  // Gushing is intense too: "stupidly good", "absolute beast".
  if (sent.slangPraise) intensity += 1.5;
  intensity -= Math.min(stripped.match(POLITE)?.length ?? 0, 3) * 0.6;

  const styleCues: string[] = [];
  const caps = capsStats(stripped);
  if (caps.shouted >= 3) styleCues.push("all caps");
  if (/!{2,}|\?{2,}|[?!]{3,}/.test(text)) styleCues.push("repeated punctuation");
  if (/\b(fuck\w*|shit\w*|wtf|bullshit)\b/i.test(text)) styleCues.push("profanity");
  if (sent.sarcasm) styleCues.push("sarcasm");
  if (sent.slangPraise) styleCues.push("strong words in praise");

  const resolved = cues.some((c) => c.kind === "resolution") && floor <= 2 && s >= -0.1;
  return {
    ...unit,
    cues: risk,
    level,
    sentiment: s,
    intensity: Math.max(0, intensity),
    resolved,
    lasting: risk.some((c) => LASTING.has(c.kind)),
    sarcasm: sent.sarcasm,
    slangPraise: sent.slangPraise,
    styleCues,
  };
}

function units(content: RecordContent): { units: Unit[]; extra: Map<number, Cue[]> } {
  const extra = new Map<number, Cue[]>();
  switch (content.kind) {
    case "text":
      return { units: [{ text: content.text, index: null }], extra };
    case "survey": {
      const out: Unit[] = [];
      content.responses.forEach((r, index) => {
        const answer = [...r.answer, ...r.selectedOptions].join(" ").trim();
        if (!answer) return;
        out.push({ text: answer, index });
        const cue = scoreCue(r.question, answer);
        if (cue) extra.set(index, [cue]);
      });
      return { units: out, extra };
    }
    case "messages": {
      const out: Unit[] = [];
      content.messages.forEach((m, index) => {
        if (m.actor === "user" && m.text.trim()) out.push({ text: m.text, index });
      });
      return { units: out, extra };
    }
    case "audio":
      return { units: content.transcript ? customerUnits(content.transcript) : [], extra };
  }
}

/**
 * The customer's mood in one message, for the shift. It is built from what the message does (the
 * level, how many threats, how heated, whether it thanks you for a fix) rather than the lexicon's
 * polarity: on the tune half the lexicon's polarity only added noise ("thanks" after a routine
 * request is not an improvement, a polite ultimatum is a degradation).
 */
function mood(v: UnitVerdict): number {
  const threats = Math.min(v.cues.filter((c) => c.level >= 3).length, 3);
  return -0.1 * v.level - 0.2 * Math.min(v.intensity, 5) - 0.4 * threats + (v.resolved ? 0.8 : 0);
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

/**
 * The default analyzer: the wink-nlp sentiment lexicon for how the customer feels, and phrase rules for
 * what they threaten or report (legal, safety, security, churn, refunds, public exposure, failed
 * contact). No network, no model download.
 */
export class LexiconAnalyzer implements Analyzer {
  readonly name = "lexicon-v1";

  async analyze(input: AnalysisInput): Promise<Analysis> {
    return this.analyzeSync(input);
  }

  /** Same as `analyze`, for callers (the evaluation) that have no reason to await. */
  analyzeSync(input: AnalysisInput): Analysis {
    const { content } = input;
    const single =
      input.type === "REVIEW" ||
      input.type === "SURVEY" ||
      content.kind === "text" ||
      content.kind === "survey";
    if (content.kind === "audio" && content.transcript === null) {
      return this.empty("audio recording without transcript: nothing to analyse", null);
    }
    const { units: pieces, extra } = units(content);
    if (pieces.length === 0) {
      return this.empty("no customer text to analyse", single ? null : "no change");
    }
    const verdicts = pieces.map((u) => judgeUnit(u, u.index === null ? [] : (extra.get(u.index) ?? [])));

    const last = verdicts[verdicts.length - 1] as UnitVerdict;
    const peak = Math.max(...verdicts.map((v) => v.level)) as LevelNumber;
    let level = peak;
    let resolvedAtEnd = false;
    // Judge by where the customer ends up: an angry start that they thank you for fixing is no alert.
    const earlier = verdicts.slice(0, -1);
    if (
      !single &&
      earlier.length > 0 &&
      last.resolved &&
      last.level <= 2 &&
      !earlier.some((v) => v.lasting)
    ) {
      resolvedAtEnd = true;
      const upset = earlier.some((v) => v.level >= 1 || v.intensity >= 2);
      level = (upset ? 1 : 0) as LevelNumber;
    }

    // The driver is the latest message at the final level, so a conversation that turns at the end
    // is reported by its turning message.
    const atLevel = verdicts.filter((v) => v.level === level);
    const driverVerdict = resolvedAtEnd
      ? last
      : (atLevel[atLevel.length - 1] ?? verdicts.reduce((a, b) => (b.level >= a.level ? b : a)));

    const shift: SentimentShift | null = single ? null : sentimentShift(verdicts.map(mood));
    const intensity = Math.max(...verdicts.map((v) => v.intensity));
    const sentiment = verdicts.reduce((sum, v) => sum + v.sentiment, 0) / verdicts.length;

    const cues: string[] = [];
    const add = (c: string) => {
      if (!cues.includes(c)) cues.push(c);
    };
    const ordered = [...verdicts].sort((a, b) => b.level - a.level);
    for (const v of ordered) for (const c of [...v.cues].sort((a, b) => b.level - a.level)) add(c.label);
    for (const v of verdicts) for (const c of v.styleCues) add(c);
    if (resolvedAtEnd) add("resolved by the end");

    return {
      analyzer: this.name,
      escalation_level: ESCALATION_LEVELS[level] as EscalationLevel,
      emotional_intensity_level: intensityLevel(intensity),
      sentiment_shift: shift,
      sentiment: round(sentiment),
      driver: { text: driverVerdict.text, message_index: driverVerdict.index },
      cues,
      reason: null,
    };
  }

  private empty(reason: string, shift: SentimentShift | null): Analysis {
    return {
      analyzer: this.name,
      escalation_level: "none",
      emotional_intensity_level: "low",
      sentiment_shift: shift,
      sentiment: 0,
      driver: null,
      cues: [],
      reason,
    };
  }
}

/** The analyzer used when nothing else is configured. */
export function createLexiconAnalyzer(): LexiconAnalyzer {
  return new LexiconAnalyzer();
}
