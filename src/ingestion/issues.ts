import { type IngestionErrorCode, type IngestionIssue, MAX_ISSUES } from "./types.ts";

/** Where the issues of one record are collected while it is validated. */
export interface RecordContext {
  index: number;
  issues: IngestionIssue[];
}

export function newContext(index: number): RecordContext {
  return { index, issues: [] };
}

/** Records an issue; beyond the cap the rest are dropped so one hostile record cannot build a huge reply. */
export function report(ctx: RecordContext, code: IngestionErrorCode, field: string, rule: string): void {
  if (ctx.issues.length >= MAX_ISSUES) return;
  ctx.issues.push({ code, recordIndex: ctx.index, field, msg: `${field}: ${rule}` });
}

export function missing(ctx: RecordContext, field: string, rule: string): void {
  report(ctx, "ErrCodeMissingRequiredField", field, rule);
}

export function invalid(ctx: RecordContext, field: string, rule: string): void {
  report(ctx, "ErrCodeInvalidFieldFormat", field, rule);
}

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;
const MAX_KEY_IN_PATH = 64;

/** `base.key`, or `base["odd key"]` when the key would make the path ambiguous; long keys are shortened. */
export function keyPath(base: string, key: string): string {
  const shown = key.length > MAX_KEY_IN_PATH ? `${key.slice(0, MAX_KEY_IN_PATH)}…` : key;
  return PLAIN_KEY.test(key) ? `${base}.${shown}` : `${base}[${JSON.stringify(shown)}]`;
}

export function indexPath(base: string, index: number): string {
  return `${base}[${index}]`;
}

/** A short name for what was received, for messages such as "must be a string (got number)". */
export function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value !== "object") return typeof value;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null ? "object" : "non-plain object";
}

/** A received string quoted for a message, shortened so a huge value cannot bloat the reply. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}
