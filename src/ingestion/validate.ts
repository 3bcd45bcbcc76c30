import type { RecordType } from "../db/schema.ts";
import { readContent } from "./content.ts";
import { readCreatedAt } from "./created-at.ts";
import { invalid, kindOf, missing, newContext, quote, type RecordContext } from "./issues.ts";
import { guardJson } from "./json-guard.ts";
import { readMetadata } from "./metadata.ts";
import { isAbsent, isBlank, isPlainObject, prop, requiredString } from "./read.ts";
import {
  type BatchResult,
  type IngestionIssue,
  MAX_ID_LENGTH,
  MAX_ISSUES,
  MAX_RECORDS,
  type NormalizedRecord,
  RECORD_TYPES,
  type RecordResult,
} from "./types.ts";
import { readHttpUrl } from "./url.ts";

export type {
  BatchResult,
  IngestionErrorCode,
  IngestionIssue,
  MessageActor,
  NormalizedMetadata,
  NormalizedRecord,
  RecordContent,
  RecordResult,
  SurveyAnswer,
  TranscriptUnit,
} from "./types.ts";

/**
 * Validates and normalizes a whole ingestion body (`{"records": [...]}`, seed 000). All or nothing: any
 * issue in any record rejects the batch, and the issues of every record are returned (at most 50).
 * Never throws. `now` bounds `createdAt` (defaults to the current time).
 */
export function validateBatch(body: unknown, now: Date = new Date()): BatchResult {
  try {
    return validateBody(body, usableNow(now));
  } catch {
    return {
      ok: false,
      issues: [batchIssue("ErrCodeBadRequest", "the request body could not be read as JSON data")],
    };
  }
}

/**
 * Validates and normalizes one record; `index` is its position in `records` and appears in every issue.
 * Never throws.
 */
export function validateRecord(raw: unknown, index: number, now: Date = new Date()): RecordResult {
  const ctx = newContext(index);
  const base = `records[${index}]`;
  try {
    const record = readRecord(ctx, raw, base, usableNow(now));
    if (record !== undefined && ctx.issues.length === 0) return { ok: true, record };
  } catch {
    // A getter or proxy from an in-process caller threw; the data is not plain JSON.
    invalid(ctx, base, "record could not be read as JSON data");
  }
  if (ctx.issues.length === 0) invalid(ctx, base, "record is invalid");
  return { ok: false, issues: ctx.issues };
}

function validateBody(body: unknown, now: Date): BatchResult {
  if (!isPlainObject(body)) {
    return fail(
      batchIssue(
        "ErrCodeBadRequest",
        `body must be a JSON object with a records array (got ${kindOf(body)})`,
      ),
    );
  }
  const records = prop(body, "records");
  if (!Array.isArray(records)) {
    return fail(
      batchIssue("ErrCodeBadRequest", `records must be an array of records (got ${kindOf(records)})`),
    );
  }
  if (records.length === 0)
    return fail(batchIssue("ErrCodeBadRequest", "records must contain at least one record"));
  if (records.length > MAX_RECORDS) {
    return fail(
      batchIssue(
        "ErrCodeTooManyRecords",
        `too many records in one request: ${records.length} (max ${MAX_RECORDS})`,
      ),
    );
  }
  const accepted: NormalizedRecord[] = [];
  const issues: IngestionIssue[] = [];
  for (let i = 0; i < records.length && issues.length < MAX_ISSUES; i++) {
    const result = validateRecord(records[i], i, now);
    if (result.ok) accepted.push(result.record);
    else issues.push(...result.issues);
  }
  return issues.length > 0
    ? { ok: false, issues: issues.slice(0, MAX_ISSUES) }
    : { ok: true, records: accepted };
}

function fail(issue: IngestionIssue): BatchResult {
  return { ok: false, issues: [issue] };
}

function batchIssue(code: IngestionIssue["code"], rule: string): IngestionIssue {
  return { code, field: "records", msg: `records: ${rule}` };
}

/** An invalid `now` would make every time comparison false; the clock is the safe fallback. */
function usableNow(now: Date): Date {
  return now instanceof Date && !Number.isNaN(now.getTime()) ? now : new Date();
}

function readRecord(ctx: RecordContext, raw: unknown, base: string, now: Date): NormalizedRecord | undefined {
  if (!isPlainObject(raw)) {
    invalid(ctx, base, `record must be an object (got ${kindOf(raw)})`);
    return undefined;
  }
  if (!guardJson(ctx, raw, base)) return undefined;
  const externalId = readIdentifier(ctx, prop(raw, "id"), `${base}.id`, "id");
  const fileId = readIdentifier(ctx, prop(raw, "fileID"), `${base}.fileID`, "fileID");
  const type = readType(ctx, prop(raw, "type"), `${base}.type`);
  const occurredAt = readCreatedAt(ctx, prop(raw, "createdAt"), `${base}.createdAt`, now);
  const sourceUrl = readSourceUrl(ctx, prop(raw, "sourceURL"), `${base}.sourceURL`);
  const metadata = readMetadata(ctx, prop(raw, "metadata"), `${base}.metadata`);
  const content = type === undefined ? undefined : readContent(ctx, type, raw, base);
  if (
    externalId === undefined ||
    fileId === undefined ||
    type === undefined ||
    occurredAt === undefined ||
    sourceUrl === undefined ||
    metadata === undefined ||
    content === undefined
  ) {
    return undefined;
  }
  const record: NormalizedRecord = { externalId, fileId, type, occurredAt, sourceUrl, content, metadata };
  if (content.kind === "audio") record.audioUrl = content.audioUrl;
  return record;
}

/** `id` and `fileID`: kept exactly as sent (ids are case-sensitive), but never blank or oversized. */
function readIdentifier(ctx: RecordContext, value: unknown, path: string, name: string): string | undefined {
  const id = requiredString(ctx, value, path, name);
  if (id === undefined) return undefined;
  if (isBlank(id)) {
    missing(ctx, path, `${name} must not be empty`);
    return undefined;
  }
  if (id.length > MAX_ID_LENGTH) {
    invalid(ctx, path, `${name} must be at most ${MAX_ID_LENGTH} characters (${id.length})`);
    return undefined;
  }
  return id;
}

function readType(ctx: RecordContext, value: unknown, path: string): RecordType | undefined {
  const type = requiredString(ctx, value, path, "type");
  if (type === undefined) return undefined;
  const known = RECORD_TYPES.find((candidate) => candidate === type);
  if (known === undefined)
    invalid(ctx, path, `type must be one of ${RECORD_TYPES.join(", ")} (got ${quote(type)})`);
  return known;
}

function readSourceUrl(ctx: RecordContext, value: unknown, path: string): string | null | undefined {
  if (isAbsent(value)) return null;
  return readHttpUrl(ctx, value, path, "sourceURL")?.href;
}
