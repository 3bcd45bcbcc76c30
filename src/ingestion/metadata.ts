import { indexPath, invalid, keyPath, kindOf, quote, type RecordContext } from "./issues.ts";
import { isBlank, isPlainObject, type JsonObject, prop, requiredObject } from "./read.ts";
import { MAX_FIELD_NAME_LENGTH, type NormalizedMetadata } from "./types.ts";

type MetadataType = "s" | "n" | "b";
type MetadataValue = string | number | boolean;

const TYPE_KEYS: readonly string[] = ["s", "n", "b"];
const TYPE_NAMES: Record<MetadataType, string> = { s: "strings", n: "numbers", b: "booleans" };

/**
 * Reads a record's `metadata` in any of seed 000's shapes: with or without the inner `metadata` wrapper,
 * with or without the `array` wrapper, a list or a single value. Returns `{ field: { type, values } }`,
 * or undefined after reporting.
 */
export function readMetadata(
  ctx: RecordContext,
  value: unknown,
  path: string,
): NormalizedMetadata | undefined {
  const outer = requiredObject(ctx, value, path, "metadata");
  if (outer === undefined) return undefined;
  const { fields, fieldsPath } = unwrapMetadata(outer, path);
  const out: NormalizedMetadata = {};
  let ok = true;
  for (const name of Object.keys(fields)) {
    const fieldPath = keyPath(fieldsPath, name);
    const field = checkFieldName(ctx, name, fieldPath)
      ? readField(ctx, prop(fields, name), fieldPath)
      : undefined;
    if (field === undefined) {
      ok = false;
      continue;
    }
    // defineProperty keeps a field named "__proto__" an ordinary own field instead of a prototype change.
    Object.defineProperty(out, name, { value: field, enumerable: true, writable: true, configurable: true });
  }
  return ok ? out : undefined;
}

/**
 * Seed 000's examples nest the fields one level deeper (`metadata.metadata.field`) or not. An outer
 * object whose only key is `metadata` is that wrapper, unless its value itself reads as one field's
 * definition (then `metadata` is a field name).
 */
function unwrapMetadata(outer: JsonObject, path: string): { fields: JsonObject; fieldsPath: string } {
  const keys = Object.keys(outer);
  const inner = prop(outer, "metadata");
  if (keys.length === 1 && isPlainObject(inner) && !looksLikeFieldDefinition(inner)) {
    return { fields: inner, fieldsPath: `${path}.metadata` };
  }
  return { fields: outer, fieldsPath: path };
}

function looksLikeFieldDefinition(obj: JsonObject): boolean {
  const keys = Object.keys(obj);
  if (keys.length === 0) return false;
  return keys.every((key) => {
    const value = obj[key];
    if (key === "array") return isPlainObject(value);
    return TYPE_KEYS.includes(key) && !isPlainObject(value);
  });
}

function checkFieldName(ctx: RecordContext, name: string, path: string): boolean {
  if (isBlank(name)) {
    invalid(ctx, path, "metadata field name must not be empty");
    return false;
  }
  if (name.length > MAX_FIELD_NAME_LENGTH) {
    invalid(
      ctx,
      path,
      `metadata field name must be at most ${MAX_FIELD_NAME_LENGTH} characters (${name.length})`,
    );
    return false;
  }
  return true;
}

function readField(
  ctx: RecordContext,
  definition: unknown,
  path: string,
): { type: MetadataType; values: MetadataValue[] } | undefined {
  if (!isPlainObject(definition)) {
    invalid(
      ctx,
      path,
      `metadata field must be an object such as {"array": {"s": ["value"]}} (got ${kindOf(definition)})`,
    );
    return undefined;
  }
  const typed = unwrapArray(ctx, definition, path);
  if (typed === undefined) return undefined;
  const type = readTypeKey(ctx, typed.obj, typed.path);
  if (type === undefined) return undefined;
  const values = readValues(ctx, type, prop(typed.obj, type), keyPath(typed.path, type));
  return values === undefined ? undefined : { type, values };
}

/** `{"array": {"s": [...]}}` and `{"s": [...]}` mean the same; `array` beside other keys is ambiguous. */
function unwrapArray(
  ctx: RecordContext,
  definition: JsonObject,
  path: string,
): { obj: JsonObject; path: string } | undefined {
  if (!Object.hasOwn(definition, "array")) return { obj: definition, path };
  if (Object.keys(definition).length > 1) {
    invalid(ctx, path, `mixed types: "array" cannot sit beside other keys in one metadata field`);
    return undefined;
  }
  const arrayPath = `${path}.array`;
  const inner = definition.array;
  if (!isPlainObject(inner)) {
    invalid(ctx, arrayPath, `array must be an object holding one of s, n, b (got ${kindOf(inner)})`);
    return undefined;
  }
  return { obj: inner, path: arrayPath };
}

function readTypeKey(ctx: RecordContext, typed: JsonObject, path: string): MetadataType | undefined {
  const keys = Object.keys(typed);
  const unknown = keys.find((key) => !TYPE_KEYS.includes(key));
  if (unknown !== undefined) {
    invalid(
      ctx,
      keyPath(path, unknown),
      `unknown metadata type ${quote(unknown)}; use s (strings), n (numbers) or b (booleans)`,
    );
    return undefined;
  }
  if (keys.length === 0) {
    invalid(ctx, path, "metadata field must hold one type key: s, n or b");
    return undefined;
  }
  if (keys.length > 1) {
    invalid(ctx, path, `mixed types: a metadata field holds one type, got ${keys.join(" and ")}`);
    return undefined;
  }
  return keys[0] as MetadataType;
}

/** A list of values of the field's type; a single value is a list of one (seed 000: "a key-value pair"). */
function readValues(
  ctx: RecordContext,
  type: MetadataType,
  raw: unknown,
  path: string,
): MetadataValue[] | undefined {
  if (!Array.isArray(raw)) return matchesType(type, raw) ? [raw] : reportMismatch(ctx, type, raw, path);
  const values: MetadataValue[] = [];
  for (let i = 0; i < raw.length; i++) {
    const value: unknown = raw[i];
    if (!matchesType(type, value)) return reportMismatch(ctx, type, value, indexPath(path, i));
    values.push(value);
  }
  return values;
}

function matchesType(type: MetadataType, value: unknown): value is MetadataValue {
  if (type === "s") return typeof value === "string";
  if (type === "n") return typeof value === "number" && Number.isFinite(value);
  return typeof value === "boolean";
}

function reportMismatch(ctx: RecordContext, type: MetadataType, value: unknown, path: string): undefined {
  invalid(
    ctx,
    path,
    `mixed types: values of a "${type}" field must be ${TYPE_NAMES[type]} (got ${kindOf(value)})`,
  );
  return undefined;
}
