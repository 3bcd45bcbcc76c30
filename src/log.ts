import { type Logger, pino } from "pino";

/**
 * Field paths that may hold a secret anywhere in a log line. Redaction is a second line of defence:
 * code never logs plaintext on purpose.
 */
export const REDACT_PATHS = [
  "credential",
  "*.credential",
  "secret",
  "*.secret",
  "signing_secret",
  "api_key",
  "*.api_key",
  "admin_api_key",
  "authorization",
  "req.headers.authorization",
  'req.headers["api-key"]',
  'req.headers["x-api-key"]',
  "headers.authorization",
  'headers["x-api-key"]',
];

export type { Logger };

/** The product's logger: JSON lines on stdout, secrets censored. `level` defaults to `info`. */
export function createLogger(level = "info", destination?: NodeJS.WritableStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } };
  return destination ? pino(options, destination) : pino(options);
}
