import type { RecordType } from "../db/schema.ts";
import type { RecordContent } from "../ingestion/types.ts";

export type EscalationLevel = "none" | "low" | "medium" | "high" | "extreme";
export type IntensityLevel = "low" | "medium" | "high" | "extreme";
export type SentimentShift = "sentiment degraded" | "sentiment improved" | "no change";

/** What an analyzer is given: a stored record's type and normalized content. */
export interface AnalysisInput {
  type: RecordType;
  content: RecordContent;
}

/** The text that drove an analysis, for the alert's `content_excerpt`. */
export interface AnalysisDriver {
  text: string;
  /**
   * Index of the message, transcript unit or survey response the text came from, in the record's own
   * list; null for a review.
   */
  message_index: number | null;
}

/** An analyzer's verdict on one record. */
export interface Analysis {
  /** Which analyzer produced this, e.g. "lexicon-v1", so stored verdicts can be told apart. */
  analyzer: string;
  escalation_level: EscalationLevel;
  emotional_intensity_level: IntensityLevel;
  /** Null for single-text records (REVIEW, SURVEY) and for audio without a transcript. */
  sentiment_shift: SentimentShift | null;
  /** Overall customer sentiment, -1..1. */
  sentiment: number;
  driver: AnalysisDriver | null;
  /** Human-readable cues that drove the levels, e.g. "legal threat: 'my attorney'". */
  cues: string[];
  /** Why the analysis is degenerate, e.g. an audio recording without transcript; null otherwise. */
  reason: string | null;
}

/** Anything that can judge a record: the built-in lexicon analyzer, or later a hosted model. */
export interface Analyzer {
  readonly name: string;
  analyze(input: AnalysisInput): Promise<Analysis>;
}

export const ESCALATION_LEVELS: readonly EscalationLevel[] = ["none", "low", "medium", "high", "extreme"];
export const INTENSITY_LEVELS: readonly IntensityLevel[] = ["low", "medium", "high", "extreme"];

/** Whether a level needs a human soon: the cut-off alerts and the evaluation use. */
export function isHighOrAbove(level: EscalationLevel): boolean {
  return level === "high" || level === "extreme";
}
