import { invalid, kindOf, missing, type RecordContext } from "./issues.ts";

export type JsonObject = Record<string, unknown>;

/** Only objects as JSON.parse makes them; class instances, Maps, Dates and the like are not payload data. */
export function isPlainObject(value: unknown): value is JsonObject {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** An own property only, so keys such as `constructor` never reach the prototype. */
export function prop(obj: JsonObject, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Senders serialize an unset field as either nothing or null; both mean absent. */
export function isAbsent(value: unknown): value is null | undefined {
  return value === undefined || value === null;
}

/** A required object field: absent is missing, anything but an object is a format error. */
export function requiredObject(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
): JsonObject | undefined {
  if (isAbsent(value)) {
    missing(ctx, path, `${name} is required`);
    return undefined;
  }
  if (!isPlainObject(value)) {
    invalid(ctx, path, `${name} must be an object (got ${kindOf(value)})`);
    return undefined;
  }
  return value;
}

/** A required array field: absent is missing, anything but an array is a format error. */
export function requiredArray(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
): unknown[] | undefined {
  if (isAbsent(value)) {
    missing(ctx, path, `${name} is required`);
    return undefined;
  }
  if (!Array.isArray(value)) {
    invalid(ctx, path, `${name} must be an array (got ${kindOf(value)})`);
    return undefined;
  }
  return value;
}

/** A required string that may be blank (the caller decides what blank means). */
export function requiredString(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
): string | undefined {
  if (isAbsent(value)) {
    missing(ctx, path, `${name} is required`);
    return undefined;
  }
  if (typeof value !== "string") {
    invalid(ctx, path, `${name} must be a string (got ${kindOf(value)})`);
    return undefined;
  }
  return value;
}

/** A required string with visible content: blank counts as missing, as seed 000 says of `text`. */
export function requiredText(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
): string | undefined {
  const text = requiredString(ctx, value, path, name);
  if (text === undefined) return undefined;
  if (isBlank(text)) {
    missing(ctx, path, `${name} must not be empty`);
    return undefined;
  }
  return text;
}

/** An optional string: null when absent, undefined when it is present but not a string. */
export function optionalString(
  ctx: RecordContext,
  value: unknown,
  path: string,
  name: string,
): string | null | undefined {
  if (isAbsent(value)) return null;
  if (typeof value !== "string") {
    invalid(ctx, path, `${name} must be a string (got ${kindOf(value)})`);
    return undefined;
  }
  return value;
}

export function isBlank(text: string): boolean {
  return text.trim() === "";
}
