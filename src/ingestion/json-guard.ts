import { indexPath, invalid, keyPath, type RecordContext } from "./issues.ts";
import { isPlainObject } from "./read.ts";
import { MAX_DEPTH, MAX_NODES, MAX_STRING_LENGTH } from "./types.ts";

interface Frame {
  value: unknown;
  path: string;
  depth: number;
}

interface Walk {
  ctx: RecordContext;
  stack: Frame[];
  /** Values queued so far; counted when queued so a wide, self-repeating graph cannot flood the stack. */
  queued: number;
  overBudget: boolean;
}

/** After this many hostile findings in one record the rest add nothing but bulk. */
const MAX_GUARD_ISSUES = 10;

/**
 * Walks a whole record, unknown fields included, before any rule is applied, and reports anything that
 * is not bounded JSON data: over-deep nesting, huge strings, NUL characters (Postgres cannot store them),
 * non-finite numbers and non-plain objects. The walk uses its own stack and a node budget, so neither
 * deep nesting nor cyclic or self-repeating object graphs from in-process callers can exhaust it.
 * Returns false when the record must be rejected.
 */
export function guardJson(ctx: RecordContext, root: unknown, rootPath: string): boolean {
  const before = ctx.issues.length;
  const walk: Walk = {
    ctx,
    stack: [{ value: root, path: rootPath, depth: 0 }],
    queued: 1,
    overBudget: false,
  };
  while (walk.stack.length > 0 && ctx.issues.length - before < MAX_GUARD_ISSUES) {
    checkNode(walk, walk.stack.pop() as Frame);
    if (walk.overBudget) {
      invalid(ctx, rootPath, `record holds more than ${MAX_NODES} values`);
      break;
    }
  }
  return ctx.issues.length === before;
}

function checkNode(walk: Walk, frame: Frame): void {
  const { value, path, depth } = frame;
  if (value === undefined || value === null || typeof value === "boolean") return;
  if (typeof value === "string") {
    checkString(walk.ctx, value, path);
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) invalid(walk.ctx, path, "must be a finite number");
  } else if (typeof value !== "object") {
    invalid(walk.ctx, path, `is not JSON data (got ${typeof value})`);
  } else if (depth >= MAX_DEPTH) {
    invalid(walk.ctx, path, `is nested deeper than ${MAX_DEPTH} levels`);
  } else if (Array.isArray(value)) {
    pushArray(walk, value, frame);
  } else if (isPlainObject(value)) {
    pushObject(walk, value, frame);
  } else {
    invalid(walk.ctx, path, "must be plain JSON data (got a non-plain object)");
  }
}

function checkString(ctx: RecordContext, value: string, path: string): void {
  if (value.length > MAX_STRING_LENGTH) {
    invalid(ctx, path, `string is longer than ${MAX_STRING_LENGTH} characters (${value.length})`);
  } else if (value.includes("\u0000")) {
    invalid(ctx, path, "string must not contain the NUL character (U+0000)");
  }
}

function withinBudget(walk: Walk, count: number): boolean {
  walk.queued += count;
  if (walk.queued > MAX_NODES) walk.overBudget = true;
  return !walk.overBudget;
}

function pushArray(walk: Walk, value: unknown[], frame: Frame): void {
  if (!withinBudget(walk, value.length)) return;
  // Pushed in reverse so findings come out in document order.
  for (let i = value.length - 1; i >= 0; i--) {
    walk.stack.push({ value: value[i], path: indexPath(frame.path, i), depth: frame.depth + 1 });
  }
}

function pushObject(walk: Walk, value: Record<string, unknown>, frame: Frame): void {
  const keys = Object.keys(value);
  if (!withinBudget(walk, keys.length)) return;
  for (let i = keys.length - 1; i >= 0; i--) {
    const key = keys[i] as string;
    const path = keyPath(frame.path, key);
    if (key.length > MAX_STRING_LENGTH || key.includes("\u0000")) {
      invalid(walk.ctx, path, "field name is too long or contains the NUL character");
      continue;
    }
    walk.stack.push({ value: value[key], path, depth: frame.depth + 1 });
  }
}
