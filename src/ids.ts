import { randomBytes } from "node:crypto";

/** Type prefixes of the product's ids; a wrong-typed id never matches a row. */
export type IdPrefix =
  | "org"
  | "key"
  | "whe"
  | "slk"
  | "eml"
  | "aut"
  | "del"
  | "att"
  | "fbi"
  | "rec"
  | "evt"
  | "clm"
  | "aud";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** A random id such as `del_3k9x…`: 20 characters of base 36, about 103 bits. */
export function newId(prefix: IdPrefix): string {
  const bytes = randomBytes(20);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % 36];
  return `${prefix}_${out}`;
}

/** A long random token for API keys and signing secrets: `prefix` + 32 bytes in base64url. */
export function newToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString("base64url")}`;
}
