import type { RecordType } from "../db/schema.ts";

/** The error codes an ingestion payload can earn (seed 000's error table). */
export type IngestionErrorCode =
  | "ErrCodeMissingRequiredField"
  | "ErrCodeInvalidFieldFormat"
  | "ErrCodeBadRequest"
  | "ErrCodeTooManyRecords";

/**
 * One problem found in a payload. `field` is a path such as `records[3].conversation.msgs[1].actor`;
 * `msg` starts with that path and then states the rule that was broken.
 */
export interface IngestionIssue {
  code: IngestionErrorCode;
  recordIndex?: number;
  field: string;
  msg: string;
}

/** Metadata after normalization: every field carries one type and a list of values. */
export type NormalizedMetadata = Record<
  string,
  { type: "s" | "n" | "b"; values: (string | number | boolean)[] }
>;

export type MessageActor = "user" | "agent" | "bot";

export interface SurveyAnswer {
  question: string;
  answer: string[];
  selectedOptions: string[];
}

export interface TranscriptUnit {
  actor: string;
  actorId: string | null;
  text: string;
  startMs: number | null;
  endMs: number | null;
}

/** A record's feedback content, by record type. */
export type RecordContent =
  | { kind: "text"; text: string }
  | { kind: "survey"; responses: SurveyAnswer[] }
  | { kind: "messages"; messages: { actor: MessageActor; text: string }[] }
  | { kind: "audio"; audioUrl: string; transcript: TranscriptUnit[] | null };

/** A record that passed validation, in the shape the rest of the product stores and analyses. */
export interface NormalizedRecord {
  externalId: string;
  fileId: string;
  type: RecordType;
  occurredAt: Date;
  sourceUrl: string | null;
  content: RecordContent;
  metadata: NormalizedMetadata;
  audioUrl?: string;
}

export type BatchResult = { ok: true; records: NormalizedRecord[] } | { ok: false; issues: IngestionIssue[] };
export type RecordResult = { ok: true; record: NormalizedRecord } | { ok: false; issues: IngestionIssue[] };

export const RECORD_TYPES: readonly RecordType[] = [
  "REVIEW",
  "SURVEY",
  "CONVERSATION",
  "FORUM_CONVERSATION_THREAD",
  "AUDIO_RECORDING",
];

/** Seed 000: "Too many records in single request (max 100)". */
export const MAX_RECORDS = 100;
/** Enough to show every problem of a few bad records without letting one payload build a huge reply. */
export const MAX_ISSUES = 50;
export const MAX_ID_LENGTH = 512;
export const MAX_FIELD_NAME_LENGTH = 128;
export const MAX_STRING_LENGTH = 200_000;
/** The deepest legitimate record is 7 levels (audio transcript unit times); 32 leaves room for extras. */
export const MAX_DEPTH = 32;
/** A 200 KB request cannot hold more values than this; a larger count means a hostile in-process caller. */
export const MAX_NODES = 250_000;
/** Pre-signed URLs with session tokens run to a few KB. */
export const MAX_URL_LENGTH = 8192;
