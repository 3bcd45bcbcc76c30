import type { IntensityLevel } from "./analyzer.ts";
import { capsStats } from "./text.ts";

const PROFANITY =
  /\b(fuck\w*|shit\w*|damn\w*|hell|crap\w*|wtf|bullshit|ass(hole)?|bloody|piss\w*|screw (you|this))\b/gi;
const INTENSIFIERS =
  /\b(so|very|really|absolutely|completely|totally|utterly|seriously|literally|insanely|ridiculously|stupidly|extremely|incredibly|unbelievabl[ey]|honestly|truly|entire|every single|straight-up|wicked|filthy|scary|terrifyingly)\b/gi;
const STRONG_WORDS =
  /\b(furious|livid|angry|outraged|disgust\w*|horrible|terrible|awful|worst|best|insane|ridiculous|unacceptable|destroyed|ruined|love|amazing|incredible|beast|monster|brutal|savage|killer|witchcraft|wild|fire|sick|gorgeous|perfect|hate|garbage|trash|pathetic|nightmare|disaster|scam|thief|thieves|freaking out|panic\w*|terrified|scared|oh my god|please,? you have to|can'?t believe|unbelievable|last straw|regret nothing)\b/gi;
const DISTRESS =
  /\b(oh my god|omg|freaking out|panic\w*|terrified|scared|please,? (you have to|don'?t)|last straw|i'?m done|stressed|nerve-wracking|thank god|miserable)\b/gi;

const count = (text: string, re: RegExp): number => text.match(re)?.length ?? 0;

/** Raw intensity points of one text; 0 is flat, 5 and up is shouting, swearing or panicking. */
export function intensityScore(text: string, sentiment: number): number {
  const { shouted, words } = capsStats(text);
  let score = 0;
  if (shouted >= 4 && shouted / Math.max(words, 1) >= 0.3) score += 3;
  else if (shouted >= 3) score += 2;
  else if (shouted >= 1) score += 1;
  const bangs = count(text, /!/g);
  if (/!{2,}|[?!]{3,}|\?!|!\?/.test(text)) score += 1.5;
  else if (bangs > 0) score += Math.min(bangs, 2) * 0.5;
  if (/\?{2,}/.test(text)) score += 1;
  score += Math.min(count(text, PROFANITY), 2) * 1;
  score += Math.min(count(text, INTENSIFIERS), 3) * 0.4;
  score += Math.min(count(text, STRONG_WORDS), 3) * 0.5;
  score += Math.min(count(text, DISTRESS), 2) * 0.75;
  score += Math.max(0, Math.abs(sentiment) - 0.4) * 1.5;
  return score;
}

/** Maps intensity points to a level. */
export function intensityLevel(score: number): IntensityLevel {
  if (score >= 4.5) return "extreme";
  if (score >= 1.5) return "high";
  if (score >= 0.4) return "medium";
  return "low";
}
