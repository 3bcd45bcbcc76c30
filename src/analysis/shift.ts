import type { SentimentShift } from "./analyzer.ts";

/** How far the customer's mood must move before it counts as a shift. */
export const SHIFT_MARGIN = 0.3;

/**
 * Movement of the customer's mood from their first message to their last. Moods are sentiment
 * corrected by what the message does (a threat lowers it, a thank-you for a fix raises it), so a
 * polite ultimatum still reads as a degradation.
 */
export function sentimentShift(moods: readonly number[]): SentimentShift {
  if (moods.length < 2) return "no change";
  const delta = (moods[moods.length - 1] as number) - (moods[0] as number);
  if (delta <= -SHIFT_MARGIN) return "sentiment degraded";
  if (delta >= SHIFT_MARGIN) return "sentiment improved";
  return "no change";
}
