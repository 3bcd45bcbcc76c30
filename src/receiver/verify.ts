import {
  createHash,
  createHmac,
  createPublicKey,
  type KeyObject,
  timingSafeEqual,
  verify,
} from "node:crypto";

/** The two signature formats Escalation Shield sends; told apart by the `webhook-signature` value. */
export type SignatureScheme = "standard" | "timestamped-hex";

export type VerifyFailure =
  | "missing_headers"
  | "bad_timestamp"
  | "timestamp_too_old"
  | "timestamp_in_future"
  | "no_matching_signature"
  | "malformed_signature";

export type VerifyResult =
  | {
      ok: true;
      scheme: SignatureScheme;
      /** `webhook-id`: the delivery id, the same on every retry of one delivery. */
      id: string;
      /**
       * What to deduplicate on: the same on every retry of one delivery, and covered by the signature, so a
       * captured request replayed with other headers is still recognised. `webhook-id` for the standard
       * scheme (it is signed); for `timestamped-hex`, whose signature covers only the timestamp and body,
       * `sha256:` and the body's SHA-256 (a delivery's body is the same bytes on every attempt, and no two
       * deliveries share one). Unlike `Idempotency-Key`, which no signature covers.
       */
      dedupeKey: string;
      /** The signed timestamp, Unix seconds. */
      timestamp: number;
      /** `webhook-event`. Not covered by the signature: trust the verified body's content over it. */
      event: string | undefined;
    }
  | { ok: false; reason: VerifyFailure; message: string };

/** Node's `IncomingHttpHeaders`, a plain record, or a fetch `Headers`. Names are matched case-insensitively. */
export type HeadersLike =
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null };

export interface VerifyOptions {
  /** The raw body exactly as it arrived: not a re-serialized parse of it. */
  body: string | Uint8Array;
  headers: HeadersLike;
  /** `whs_…` signing secrets to accept; several during a rotation. */
  secrets?: string[];
  /** Ed25519 public keys (base64 of the raw 32 bytes, `whpk_` prefix allowed) to accept `v1a` signatures from. */
  publicKeys?: string[];
  /** How far the signed timestamp may be from `now`, either way, in seconds: a finite number >= 0. Default 300. */
  toleranceSeconds?: number;
  /** The current time (a Date or Unix seconds). Default the clock. */
  now?: Date | number;
}

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function header(headers: HeadersLike, name: string): string | undefined {
  if (typeof headers.get === "function")
    return (headers.get as (n: string) => string | null)(name) ?? undefined;
  const record = headers as Record<string, string | string[] | undefined>;
  let value = record[name];
  if (value === undefined) {
    const key = Object.keys(record).find((k) => k.toLowerCase() === name);
    value = key === undefined ? undefined : record[key];
  }
  return Array.isArray(value) ? value.join(", ") : value;
}

function fail(reason: VerifyFailure, message: string): VerifyResult {
  return { ok: false, reason, message };
}

/** Equal-length buffers compared in constant time; different lengths are simply unequal. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function hmac(secret: string, prefix: string, body: Buffer): Buffer {
  return createHmac("sha256", Buffer.from(secret, "utf8")).update(prefix).update(body).digest();
}

function ed25519Key(publicKey: string): KeyObject {
  const raw = Buffer.from(publicKey.replace(/^whpk_/, ""), "base64");
  if (raw.length !== 32) throw new TypeError("an Ed25519 public key must be 32 bytes in base64");
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

function checkTimestamp(raw: string, tolerance: number, now: number): number | VerifyResult {
  if (!/^\d{1,12}$/.test(raw))
    return fail("bad_timestamp", `timestamp "${raw.slice(0, 20)}" is not Unix seconds`);
  const ts = Number(raw);
  if (now - ts > tolerance) {
    return fail("timestamp_too_old", `timestamp is ${now - ts} s old, more than the ${tolerance} s allowed`);
  }
  if (ts - now > tolerance) {
    return fail(
      "timestamp_in_future",
      `timestamp is ${ts - now} s ahead, more than the ${tolerance} s allowed`,
    );
  }
  return ts;
}

/**
 * Verifies an Escalation Shield webhook: the Standard Webhooks scheme (`webhook-signature: v1,<base64>
 * [v1,<base64> …] [v1a,<base64>]` over `"<id>.<timestamp>.<body>"`) or the `timestamped-hex` scheme
 * (`webhook-signature: t=<ts>,v1=<hex>` over `"<ts>.<body>"`), told apart by the header's format.
 * The request passes when any signature matches any of `secrets` (HMAC-SHA256 keyed with the UTF-8 bytes of
 * the whole `whs_…` string) or `publicKeys` (Ed25519), and its timestamp is within `toleranceSeconds`
 * (default 300) of `now`. Comparisons are constant-time. Never throws for a bad request; throws TypeError
 * when neither secrets nor public keys are given, a public key is not 32 bytes, or `toleranceSeconds` is
 * not a finite number >= 0.
 */
export function verifyWebhook(options: VerifyOptions): VerifyResult {
  const secrets = options.secrets ?? [];
  const keys = (options.publicKeys ?? []).map(ed25519Key);
  if (secrets.length === 0 && keys.length === 0) {
    throw new TypeError("verifyWebhook needs at least one secret or public key");
  }
  const tolerance = options.toleranceSeconds ?? 300;
  // NaN or Infinity would accept any timestamp, i.e. switch replay protection off by accident.
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new TypeError(`toleranceSeconds must be a finite number of seconds >= 0, got ${tolerance}`);
  }
  const now =
    options.now === undefined
      ? Math.floor(Date.now() / 1000)
      : typeof options.now === "number"
        ? options.now
        : Math.floor(options.now.getTime() / 1000);
  const body =
    typeof options.body === "string" ? Buffer.from(options.body, "utf8") : Buffer.from(options.body);

  const id = header(options.headers, "webhook-id");
  const signature = header(options.headers, "webhook-signature");
  const event = header(options.headers, "webhook-event");
  if (!id || !signature) return fail("missing_headers", "webhook-id and webhook-signature are required");

  if (/^\s*t=/.test(signature))
    return verifyTimestampedHex(id, signature, event, body, secrets, tolerance, now);

  const rawTimestamp = header(options.headers, "webhook-timestamp");
  if (!rawTimestamp) return fail("missing_headers", "webhook-timestamp is required");
  const ts = checkTimestamp(rawTimestamp.trim(), tolerance, now);
  if (typeof ts !== "number") return ts;

  const signed = `${id}.${ts}.`;
  const expected = secrets.map((s) => hmac(s, signed, body));
  const message = Buffer.concat([Buffer.from(signed, "utf8"), body]);
  let wellFormed = 0;
  let matched = false;
  for (const entry of signature.trim().split(/\s+/)) {
    const comma = entry.indexOf(",");
    const version = entry.slice(0, comma);
    const value = entry.slice(comma + 1);
    // Versions this kit does not know are skipped, so a sender adding one does not break receivers.
    if (comma < 0 || (version !== "v1" && version !== "v1a") || !BASE64.test(value)) continue;
    const given = Buffer.from(value, "base64");
    if (version === "v1" && given.length === 32) {
      wellFormed++;
      // No early exit: every candidate is compared, so timing does not tell which one matched.
      for (const e of expected) if (sameBytes(given, e)) matched = true;
    } else if (version === "v1a" && given.length === 64) {
      wellFormed++;
      for (const k of keys) if (verify(null, message, k, given)) matched = true;
    }
  }
  if (wellFormed === 0) {
    return fail("malformed_signature", "webhook-signature holds no v1,<base64> or v1a,<base64> signature");
  }
  if (!matched) return fail("no_matching_signature", "no signature matches the given secrets or public keys");
  return { ok: true, scheme: "standard", id, dedupeKey: id, timestamp: ts, event };
}

function verifyTimestampedHex(
  id: string,
  signature: string,
  event: string | undefined,
  body: Buffer,
  secrets: string[],
  tolerance: number,
  now: number,
): VerifyResult {
  let rawTimestamp: string | undefined;
  const given: Buffer[] = [];
  for (const part of signature.split(",")) {
    const eq = part.indexOf("=");
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === "t") rawTimestamp = value;
    else if (key === "v1" && /^[0-9a-f]{64}$/i.test(value)) given.push(Buffer.from(value, "hex"));
  }
  if (rawTimestamp === undefined || given.length === 0) {
    return fail("malformed_signature", "webhook-signature is not t=<timestamp>,v1=<hex>");
  }
  const ts = checkTimestamp(rawTimestamp, tolerance, now);
  if (typeof ts !== "number") return ts;
  // Seed 004 signs the timestamp as written in `t=`, so that exact text is what is hashed.
  const expected = secrets.map((s) => hmac(s, `${rawTimestamp}.`, body));
  let matched = false;
  for (const g of given) for (const e of expected) if (sameBytes(g, e)) matched = true;
  if (!matched) return fail("no_matching_signature", "no v1 signature matches the given secrets");
  const dedupeKey = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  return { ok: true, scheme: "timestamped-hex", id, dedupeKey, timestamp: ts, event };
}
