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
