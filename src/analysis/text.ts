/** Curly quotes and dashes folded to ASCII so that one pattern matches both spellings. */
export function normalize(text: string): string {
  return text
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2013\u2014]/g, " - ")
    .replace(/\u00a0/g, " ");
}

// An opening quote follows a boundary and a closing one precedes one, so apostrophes inside words
// ("I'm", "don't") never open or close a span.
const QUOTED = /(^|[\s(:,])(["'])(?=\S)([^\n]*?\S)\2(?=$|[\s.,;:!?)])/g;

/**
 * The text with quoted spans blanked out. Quotes are other people's words, the customer's own earlier
 * message or scare quotes: a threat inside them is reported, not made.
 */
export function stripQuotes(text: string): string {
  return text.replace(
    QUOTED,
    (_m, lead: string, _q: string, inner: string) => `${lead}"${" ".repeat(Math.min(inner.length, 3))}"`,
  );
}

/** Sentences, split after terminal punctuation and at line breaks. */
export function sentences(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+|\n+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Whether a sentence asks something rather than states it. */
export function isQuestion(sentence: string): boolean {
  return /\?\s*$/.test(sentence);
}

/** Acronyms that are written in capitals anyway, so they are not shouting. */
const ACRONYMS = new Set([
  "API",
  "BBB",
  "CEO",
  "CFO",
  "CFPB",
  "CIO",
  "CNIL",
  "CPSC",
  "CTO",
  "DOT",
  "DSAR",
  "ER",
  "ETA",
  "EU",
  "FAQ",
  "FCC",
  "FTC",
  "GDPR",
  "ICO",
  "ID",
  "IT",
  "MRI",
  "OK",
  "PDF",
  "PIN",
  "SMS",
  "SSO",
  "TV",
  "UK",
  "URL",
  "US",
  "USA",
  "VIP",
  "VPN",
]);

/** Short words that are only capitalised when shouted. */
const SHOUTED_SHORT = new Set([
  "NOT",
  "NOW",
  "YOU",
  "WHY",
  "WHO",
  "HOW",
  "ALL",
  "AND",
  "THE",
  "ARE",
  "YES",
  "NO",
  "MY",
  "ME",
]);

/** Counts of shouted words (all capitals, not acronyms) and of all words. */
export function capsStats(text: string): { shouted: number; words: number } {
  const words = text.match(/[A-Za-z][A-Za-z']*/g) ?? [];
  let shouted = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (!/^[A-Z][A-Z']+$/.test(w) || w === "I" || ACRONYMS.has(w)) continue;
    const neighbourCaps = [words[i - 1], words[i + 1]].some(
      (n) => n !== undefined && /^[A-Z][A-Z']+$/.test(n) && !ACRONYMS.has(n),
    );
    if (w.length >= 4 || SHOUTED_SHORT.has(w) || neighbourCaps) shouted++;
  }
  return { shouted, words: words.length };
}
