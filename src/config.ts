import { isIP } from "node:net";
import { ConfigError } from "./errors.ts";
import { allowlistEntryProblem, dnsServerProblem } from "./outbound/guard.ts";

/** Everything the product reads from its environment, checked once at start-up. */
export interface Config {
  nodeEnv: string;
  databaseUrl: string;
  redisUrl: string;
  /** Base64 key for stored secrets; `undefined` outside production means "use the local key file". */
  secretsKey: string | undefined;
  secretsKeyPrevious: string | undefined;
  /** Where the development key is kept when SECRETS_KEY is unset. Default `.escalation-shield/secrets.key`. */
  secretsKeyFile: string;
  host: string;
  port: number;
  /**
   * Where `worker` serves `/metrics` (on `host`), since it runs no API; unset means it serves none. `serve`
   * and `start` serve `/metrics` on the API port instead. 0 picks a free port.
   */
  metricsPort: number | undefined;
  publicUrl: string;
  /** Hosts or CIDRs exempt from the private-address block. */
  destinationAllowlist: string[];
  /** Hosts or CIDRs that ingested audio URLs may point at although not public; its own list, empty by default. */
  audioFetchAllowlist: string[];
  allowHttpDestinations: boolean;
  /** `ip[:port]` resolvers for outbound DNS; empty means the system's. */
  dnsServers: string[];
  /** Prefix of every BullMQ key. Default `es`; wrap in braces (`{es}`) for Redis Cluster. */
  queuePrefix: string;
  /** Seconds to wait after attempt 1, 2, …; its length + 1 is the number of attempts. */
  retrySchedule: number[];
  /** Attempts one worker process keeps in flight. Default 200. */
  deliveryConcurrency: number;
  /** How often the outbox sweeper looks for pending deliveries that lost their job, in ms. Default 10 000. */
  sweepIntervalMs: number;
  logLevel: string;
  /** Admin API requests per minute per API key. Default 600. */
  adminRateLimitPerMinute: number;
  /** Ingestion requests per minute per feedback integration key (seed 000: 2000). */
  ingestRateLimitPerMinute: number;
  /** Payload-validator requests per minute per client address. Default 60. */
  validateRateLimitPerMinute: number;
  /** Attempts in flight per destination across all workers, unless the destination sets its own. Default 16. */
  destinationMaxInFlight: number;
  /** Failures in a row that open a destination's circuit breaker. Default 5. */
  breakerFailureThreshold: number;
  /** A breaker's first cool-down, in ms; it doubles after each failed probe, up to 5 minutes. Default 30 000. */
  breakerCooldownMs: number;
  /** How long a destination may keep failing before it is disabled, in ms. Default 5 days. */
  disableAfterMs: number;
  /** How long delivered and failed deliveries (with their attempts) are kept after they finished, in ms; 0 keeps them. Default 30 days. */
  deliveryRetentionMs: number;
  /** How long records and their analyses are kept after they were stored, in ms; 0 keeps them. Default 90 days. */
  recordRetentionMs: number;
  /** How long audit events are kept, in ms; 0 keeps them. Default 365 days. */
  auditRetentionMs: number;
  /** How often a worker process prunes (one process at a time), in ms. Default 1 minute. */
  pruneIntervalMs: number;
  /** The operator's SMTP server for email destinations; undefined: email destinations are refused. */
  smtp: SmtpConfig | undefined;
  /** Proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client; empty: the socket's address. */
  trustProxy: string[];
  /** Recipient domains email destinations may use (lower case); empty: any. */
  emailAllowedDomains: string[];
}

/** Svix's schedule: 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, about 27.6 hours in all. */
export const DEFAULT_RETRY_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000];

type Env = Record<string, string | undefined>;

/** Where email goes out: `SMTP_URL` split up, and `SMTP_FROM`. */
export interface SmtpConfig {
  host: string;
  port: number;
  /** `smtps://`: TLS from the first byte (usually port 465). */
  secure: boolean;
  /** STARTTLS is required unless `?tls=off` (for a relay on the same host or a test server). */
  requireTls: boolean;
  user: string | undefined;
  password: string | undefined;
  from: string;
}

/** `SMTP_URL` and `SMTP_FROM`, both or neither. */
function smtp(env: Env): SmtpConfig | undefined {
  const raw = str(env, "SMTP_URL", "");
  if (raw === "") {
    if (str(env, "SMTP_FROM", "") !== "")
      throw new ConfigError("SMTP_URL", "is required when SMTP_FROM is set");
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError("SMTP_URL", "is not a valid URL (smtp://user:pass@host:587 or smtps://…:465)");
  }
  if (u.protocol !== "smtp:" && u.protocol !== "smtps:") {
    throw new ConfigError("SMTP_URL", "must use smtp:// (STARTTLS) or smtps:// (TLS)");
  }
  if (u.hostname === "") throw new ConfigError("SMTP_URL", "has no host");
  const tls = u.searchParams.get("tls");
  if (tls !== null && tls !== "off") throw new ConfigError("SMTP_URL", '?tls= may only be "off"');
  const secure = u.protocol === "smtps:";
  const from = str(env, "SMTP_FROM", "");
  if (!/^[^\s@<>]+@[^\s@<>]+$/.test(from) && !/^[^<>\r\n]*<[^\s@<>]+@[^\s@<>]+>$/.test(from)) {
    throw new ConfigError(
      "SMTP_FROM",
      "must be an address such as alerts@example.com or Alerts <alerts@example.com>",
    );
  }
  return {
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: u.port === "" ? (secure ? 465 : 587) : Number(u.port),
    secure,
    requireTls: !secure && tls !== "off",
    user: u.username === "" ? undefined : decodeURIComponent(u.username),
    password: u.password === "" ? undefined : decodeURIComponent(u.password),
    from,
  };
}

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === "" ? fallback : v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

function optionalInt(env: Env, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  return raw === undefined || raw === "" ? undefined : int(env, name, 0, min, max);
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

function list(env: Env, name: string): string[] {
  return (env[name] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

const DURATION_UNITS_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration written `90s`, `15m`, `12h` or `30d`; `0` means "never" (returned as 0). Returned in ms.
 */
function duration(env: Env, name: string, fallback: string, minMs: number): number {
  const raw = str(env, name, fallback).trim();
  if (raw === "0") return 0;
  const m = /^(\d{1,7})(s|m|h|d)$/.exec(raw);
  const ms = m ? Number(m[1]) * (DURATION_UNITS_MS[m[2] as string] as number) : Number.NaN;
  if (!(ms >= minMs)) {
    throw new ConfigError(
      name,
      `must be a duration such as 90s, 15m, 12h or 30d (at least ${minMs / 1000} s)${fallback === "0" ? "" : ", or 0"}, got "${raw}"`,
    );
  }
  return ms;
}

/** A duration that must not be `0` (an interval). */
function nonZero(name: string, ms: number): number {
  if (ms === 0) throw new ConfigError(name, "must be a duration such as 30s or 1m, not 0");
  return ms;
}

/** A comma-separated list whose every entry `problem` accepts; the error names the variable and the entry. */
function checkedList(env: Env, name: string, problem: (entry: string) => string | undefined): string[] {
  const entries = list(env, name);
  for (const entry of entries) {
    const why = problem(entry);
    if (why) throw new ConfigError(name, `entry "${entry}" ${why}`);
  }
  return entries;
}

function url(env: Env, name: string, fallback: string, protocols: string[]): string {
  const value = str(env, name, fallback);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, "is not a valid URL");
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(" or ")}`);
  }
  return value;
}

function base64Key(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  if (Buffer.from(raw, "base64").length !== 32) {
    throw new ConfigError(name, "must be 32 bytes in base64 (make one with `escalation-shield keygen`)");
  }
  return raw;
}

/** Reads and checks the environment. Throws {@link ConfigError} naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = str(env, "NODE_ENV", "development");
  const secretsKey = base64Key(env, "SECRETS_KEY");
  if (nodeEnv === "production" && secretsKey === undefined) {
    throw new ConfigError("SECRETS_KEY", "is required when NODE_ENV=production");
  }
  const schedule = list(env, "DELIVERY_RETRY_SCHEDULE");
  const retrySchedule = schedule.length === 0 ? DEFAULT_RETRY_SCHEDULE : schedule.map(Number);
  if (retrySchedule.some((s) => !Number.isFinite(s) || s < 0 || s > 7 * 86400)) {
    throw new ConfigError("DELIVERY_RETRY_SCHEDULE", "must be comma-separated seconds from 0 to 604800");
  }
  const publicUrl = url(env, "PUBLIC_URL", "http://localhost:3000", ["http:", "https:"]).replace(/\/+$/, "");
  return Object.freeze({
    nodeEnv,
    databaseUrl: url(env, "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/escalation_shield", [
      "postgres:",
      "postgresql:",
    ]),
    redisUrl: url(env, "REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]),
    secretsKey,
    secretsKeyPrevious: base64Key(env, "SECRETS_KEY_PREVIOUS"),
    secretsKeyFile: str(env, "SECRETS_KEY_FILE", ".escalation-shield/secrets.key"),
    host: str(env, "HOST", "127.0.0.1"),
    port: int(env, "PORT", 3000, 0, 65535),
    metricsPort: optionalInt(env, "METRICS_PORT", 0, 65535),
    publicUrl,
    destinationAllowlist: checkedList(env, "DESTINATION_ALLOWLIST", allowlistEntryProblem),
    audioFetchAllowlist: checkedList(env, "AUDIO_FETCH_ALLOWLIST", allowlistEntryProblem),
    allowHttpDestinations: bool(env, "ALLOW_HTTP_DESTINATIONS", false),
    dnsServers: checkedList(env, "DNS_SERVERS", dnsServerProblem),
    queuePrefix: str(env, "QUEUE_PREFIX", "es"),
    retrySchedule,
    deliveryConcurrency: int(env, "DELIVERY_CONCURRENCY", 200, 1, 5000),
    sweepIntervalMs: int(env, "SWEEP_INTERVAL_MS", 10_000, 100, 3_600_000),
    logLevel: str(env, "LOG_LEVEL", "info"),
    adminRateLimitPerMinute: int(env, "ADMIN_RATE_LIMIT_PER_MINUTE", 600, 1, 1_000_000),
    ingestRateLimitPerMinute: int(env, "INGEST_RATE_LIMIT_PER_MINUTE", 2000, 1, 1_000_000),
    validateRateLimitPerMinute: int(env, "VALIDATE_RATE_LIMIT_PER_MINUTE", 60, 1, 1_000_000),
    destinationMaxInFlight: int(env, "DESTINATION_MAX_IN_FLIGHT", 16, 1, 10_000),
    breakerFailureThreshold: int(env, "BREAKER_FAILURE_THRESHOLD", 5, 1, 10_000),
    breakerCooldownMs: int(env, "BREAKER_COOLDOWN_MS", 30_000, 100, 3_600_000),
    disableAfterMs: int(env, "DESTINATION_DISABLE_AFTER_S", 5 * 86400, 1, 365 * 86400) * 1000,
    deliveryRetentionMs: duration(env, "DELIVERY_RETENTION", "30d", 1000),
    recordRetentionMs: duration(env, "RECORD_RETENTION", "90d", 1000),
    auditRetentionMs: duration(env, "AUDIT_RETENTION", "365d", 1000),
    pruneIntervalMs: nonZero("PRUNE_INTERVAL", duration(env, "PRUNE_INTERVAL", "1m", 1000)),
    smtp: smtp(env),
    trustProxy: checkedList(env, "TRUST_PROXY", (entry) =>
      isCidrOrAddress(entry) ? undefined : "is not an address or CIDR",
    ),
    emailAllowedDomains: checkedList(env, "EMAIL_ALLOWED_DOMAINS", (d) =>
      /^[a-z0-9.-]+\.[a-z]{2,}$/i.test(d) ? undefined : "is not a domain name",
    ).map((d) => d.toLowerCase()),
  });
}

/** A copy of this process's environment, for starting a child process of the product (the demo does). */
export function inheritedEnvironment(): Record<string, string | undefined> {
  return { ...process.env };
}

/** `10.0.0.1`, `10.0.0.0/8`, `::1` or `fd00::/8`. */
function isCidrOrAddress(entry: string): boolean {
  const [address, bits, extra] = entry.split("/");
  if (extra !== undefined || address === undefined || isIP(address) === 0) return false;
  if (bits === undefined) return true;
  const n = Number(bits);
  return Number.isInteger(n) && n >= 0 && n <= (isIP(address) === 4 ? 32 : 128);
}
