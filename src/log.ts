import { type Logger, pino } from "pino";

/**
 * Field paths that may hold a secret anywhere in a log line. Redaction is a second line of defence:
 * code never logs plaintext on purpose.
 */
export const REDACT_PATHS = [
  // Credentials of webhook auth, as the API takes them and as code names them.
  "credential",
  "*.credential",
  "*.*.credential",
  // Signing secrets (`whs_…`), current and rotated-out, and Ed25519 secret keys.
  "secret",
  "*.secret",
  "*.*.secret",
  "signing_secret",
  "*.signing_secret",
  "signingSecret",
  "*.signingSecret",
  "previousSecret",
  "*.previousSecret",
  "secretKey",
  "*.secretKey",
  "ed25519SecretKey",
  "*.ed25519SecretKey",
  // Admin and ingestion API keys.
  "api_key",
  "*.api_key",
  "*.*.api_key",
  "apiKey",
  "*.apiKey",
  "admin_api_key",
  "*.admin_api_key",
  "adminApiKey",
  "*.adminApiKey",
  "token",
  "*.token",
  "password",
  "*.password",
  "authorization",
  "*.authorization",
  // Request and outbound headers that carry any of the above.
  "req.headers.authorization",
  'req.headers["api-key"]',
  'req.headers["x-api-key"]',
  "req.headers.cookie",
  "headers.authorization",
  'headers["api-key"]',
  'headers["x-api-key"]',
  "*.headers.authorization",
  '*.headers["api-key"]',
  '*.headers["x-api-key"]',
];

export type { Logger };

/** The product's logger: JSON lines on stdout, secrets censored. `level` defaults to `info`. */
export function createLogger(level = "info", destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } };
  return destination ? pino(options, destination) : pino(options);
}

const LOUD_LEVELS = new Set<string | symbol>(["warn", "error", "fatal"]);

/**
 * Wraps `log` (and every child made from it) so that a warning or error whose `err` (or first argument)
 * `isOutage` says comes from an unreachable Postgres or Redis goes to `debug` and to `onOutage` instead.
 * During an outage every retry, job, sweep and request would otherwise log its own line; the dependency
 * monitor logs one line per state change instead.
 */
export function quietOutages(
  log: Logger,
  isOutage: (err: unknown) => boolean,
  onOutage: (err: unknown) => void,
): Logger {
  const wrap = (target: Logger): Logger =>
    new Proxy(target, {
      get(t, prop, receiver) {
        if (prop === "child") {
          return (...args: Parameters<Logger["child"]>) => wrap(t.child(...args) as unknown as Logger);
        }
        if (LOUD_LEVELS.has(prop)) {
          const level = prop as "warn" | "error" | "fatal";
          return (first: unknown, ...rest: unknown[]) => {
            const err = first instanceof Error ? first : (first as { err?: unknown } | null)?.err;
            const quiet = err !== undefined && isOutage(err);
            if (quiet) onOutage(err);
            return (t[quiet ? "debug" : level] as (...a: unknown[]) => void)(first, ...rest);
          };
        }
        return Reflect.get(t, prop, receiver);
      },
    });
  return wrap(log);
}
