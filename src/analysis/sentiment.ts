import model from "wink-eng-lite-web-model";
import winkNLP from "wink-nlp";
import { sentences } from "./text.ts";

type Wink = ReturnType<typeof winkNLP>;

let engine: Wink | undefined;

// Loading the model takes a noticeable moment, so it happens on first use, once per process.
function wink(): Wink {
  engine ??= winkNLP(model, ["sbd", "negation", "sentiment"]);
  return engine;
}

/** The sentiment library's own score of a text, -1..1, with no adjustment: the evaluation's baseline. */
export function librarySentiment(text: string): number {
  const nlp = wink();
  return nlp.readDoc(text).out(nlp.its.sentiment) as number;
}

/**
 * Slang that reads as negative to a general lexicon but is praise in reviews ("brutal boss fight",
 * "absolute beast"). It is dropped only when what is left of the text is positive, so a text that is
 * negative without it keeps its words.
 */
const PRAISE_SLANG =
  /\b(holy (hell|crap|cow)|hell|damn|brutal(ly)?|savage|insane(ly)?|killer|beast|monster|sick|wicked|stupid(ly)?|filthy|scary|terrifying(ly)?|ridiculous(ly)?|crazy|wild|fire|cooked|cooking|witchcraft|absolute unit|unit|fucking|freaking|bloody|badass|nuts)\b/gi;

/** Slang that is praise by construction: "stupidly light", "absolute unit", "killer battery". */
const PRAISE_CONSTRUCTION =
  /\b(stupid(ly)?|insanely|ridiculously|filthy|scary|terrifyingly|wicked|crazy|brutally|absurdly) (good|fast|light|cheap|easy|smooth|quick|efficient|strong|comfortable|accurate|simple)\b|\babsolute (beast|unit|monster)\b|\bkiller (battery|feature|app|price|deal|sound|soundtrack|camera|screen)\b|\b(is|was) (fire|sick)\b|\bdamn,? (you|that|this)\b/i;

/**
 * Phrases the general lexicon misreads, with the score they should carry (0 makes them neutral). Negative ones
 * are the routine ways customers describe a failure without any emotional word.
 */
const REPHRASE: [RegExp, number][] = [
  [/\bregret nothing\b/gi, 0.5],
  [/\b(no|zero) complaints\b/gi, 0.5],
  [/\bcan'?t complain\b/gi, 0.5],
  [/\b(never|not) (once )?(let|letting) (me|us) down\b/gi, 0.5],
  [/\bdidn'?t let (me|us) down\b/gi, 0.5],
  [/\bgrew on me\b/gi, 0.5],
  [/\bnothing comes to mind\b/gi, 0.5],
  [/\bworth it\b/gi, 0.5],
  [/\b10\/10\b/g, 0.5],
  [/\b(thank god|phew)\b/gi, 0.5],
  [/\b(lifesaver|life saver)\b/gi, 0.5],
  [/\bnot (a )?(scam|ripoff|rip-off)\b/gi, 0.5],
  [/\b(charged|billed) (me )?twice\b/gi, -0.5],
  [/\bdouble[- ]billed\b/gi, -0.5],
  [/\b(still )?(no|zero) (reply|replies|answer|answers|response|refund|eta)\b/gi, -0.5],
  [
    /\b(doesn'?t|dosn'?t|dosent|does not|don'?t|won'?t|isn'?t|not) (work|working|load|loading|sync|syncing|ring)\b/gi,
    -0.5,
  ],
  [/\b(crash|crashes|crashing|crashin|froze|freezes|freezing)\b/gi, -0.5],
  [/\b(missing|gone|lost|deleted|wiped)\b/gi, -0.5],
  [/\bdown since\b/gi, -0.5],
  [/\bwhat a novel idea\b/gi, -0.5],
  [/\b(garbage|trash|useless|pathetic|a joke|rip-?off|scam)\b/gi, -0.5],
  // The lexicon scores these for senses customers rarely mean.
  [/\b(still )?waiting\b/gi, 0],
  [/\b(customer )?(support|help ?(desk|center|centre))\b/gi, 0],
  [/\bsorry (for|about|i)\b/gi, 0],
  [/\bno worries\b/gi, 0.5],
];

/** Sarcasm: praise words wrapped around a complaint. Each one marks the clause it is in as negative. */
const SARCASM = [
  /\boh,? (great|perfect|fantastic|wonderful|look|good|lovely|brilliant)\b/i,
  /\bthanks? (so much )?for (the|nothing|teaching)\b/i,
  /\bso that was fun\b/i,
  /\bwould recommend to my worst enemy\b/i,
  /\bwhat a novel idea\b/i,
  /\bcongrats\b/i,
  /\/s\b/,
];

export interface ClauseScore {
  text: string;
  score: number;
  sarcastic: boolean;
}

export interface SentimentResult {
  /** -1..1 */
  score: number;
  clauses: ClauseScore[];
  /** Whether slang was read as praise (for the "strong words in praise" cue). */
  slangPraise: boolean;
  sarcasm: boolean;
}

/** A clause with the misread phrases taken out, and the scores those phrases carry instead. */
function rephrase(text: string): { rest: string; scores: number[] } {
  let rest = text;
  const scores: number[] = [];
  for (const [re, score] of REPHRASE) {
    rest = rest.replace(re, () => {
      if (score !== 0) scores.push(score);
      return " ";
    });
  }
  // The tokenizer reads some word-plus-period endings ("off.") as emoticons.
  return { rest: rest.replace(/[.!?]+\s*$/, ""), scores };
}

// Clauses split at colons and semicolons too: the library's negation scope runs across them
// ("not affiliated: this is the best" reads as negative otherwise).
function clauses(text: string): { text: string; weight: number }[] {
  const out: { text: string; weight: number }[] = [];
  for (const s of sentences(text)) {
    for (const part of s.split(/[:;]\s+/)) {
      // As in VADER, what follows "but" outweighs what precedes it.
      const but = part.split(/,?\s+but\s+/i);
      if (but.length === 2) {
        out.push({ text: but[0] as string, weight: 0.5 }, { text: but[1] as string, weight: 1.5 });
      } else if (part.trim()) out.push({ text: part, weight: 1 });
    }
  }
  return out;
}

function scoreClauses(text: string): ClauseScore[] & { weights: number[] } {
  const nlp = wink();
  const parts = clauses(text);
  const scored = parts.map((c) => {
    const sarcastic = SARCASM.some((re) => re.test(c.text));
    const { rest, scores } = rephrase(c.text);
    const lexical = nlp.readDoc(rest).out(nlp.its.sentiment) as number;
    const parts = lexical === 0 ? scores : [lexical, ...scores];
    let score = parts.length === 0 ? 0 : parts.reduce((a, b) => a + b, 0) / parts.length;
    if (sarcastic) score = -Math.max(Math.abs(score), 0.4);
    return { text: c.text, score, sarcastic };
  });
  return Object.assign(scored, { weights: parts.map((p) => p.weight) });
}

function weightedMean(scores: ClauseScore[] & { weights: number[] }): number {
  let sum = 0;
  let weight = 0;
  scores.forEach((c, i) => {
    const w = scores.weights[i] ?? 1;
    // Neutral clauses count half: factual detail should dilute a feeling a little, not drown it.
    const effective = c.score === 0 ? w * 0.5 : w;
    sum += c.score * effective;
    weight += effective;
  });
  return weight === 0 ? 0 : Math.max(-1, Math.min(1, sum / weight));
}

function hasSlang(text: string): boolean {
  PRAISE_SLANG.lastIndex = 0;
  return PRAISE_SLANG.test(text);
}

/** Sentiment of a customer's text, -1..1, with the adjustments described above. */
export function analyzeSentiment(text: string): SentimentResult {
  const plain = scoreClauses(text);
  const sarcasm = plain.some((c) => c.sarcastic);
  if (!sarcasm && hasSlang(text)) {
    // Slang is read as praise only when, without it, the text is positive somewhere and negative
    // nowhere: "brutal in the best way" is praise, "brutal wait, no refund" is not.
    const masked = scoreClauses(text.replace(PRAISE_SLANG, " "));
    const positive =
      masked.some((c) => c.score >= 0.3) ||
      /\b(love|best|great|amazing|worth|10\/10|respect)\b/i.test(text) ||
      PRAISE_CONSTRUCTION.test(text);
    const negative = masked.some((c) => c.score <= -0.3);
    if (positive && !negative) {
      return { score: weightedMean(masked), clauses: masked, slangPraise: true, sarcasm };
    }
  }
  return { score: weightedMean(plain), clauses: plain, slangPraise: false, sarcasm };
}
