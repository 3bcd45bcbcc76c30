import { invalidField } from "./errors.ts";

/**
 * Opaque page cursors: the position a page ends at, as base64url JSON. Clients pass `next_cursor` back as
 * `cursor` and never look inside; a cursor that does not decode to the expected shape is a 400 naming
 * `query.cursor`.
 */
export function encodeCursor(position: Record<string, string>): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/** Decodes a cursor made by {@link encodeCursor} with exactly the string fields `fields`. */
export function decodeCursor<K extends string>(raw: string, fields: readonly K[]): Record<K, string> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
  } catch {
    throw invalidField("query.cursor", "is not a cursor this API made (pass next_cursor back as it is)");
  }
  const ok =
    typeof value === "object" &&
    value !== null &&
    Object.keys(value).length === fields.length &&
    fields.every((f) => typeof (value as Record<string, unknown>)[f] === "string");
  if (!ok)
    throw invalidField("query.cursor", "is not a cursor this API made (pass next_cursor back as it is)");
  return value as Record<K, string>;
}
