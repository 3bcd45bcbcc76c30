/** A bad or missing environment variable; the message starts with its name. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly variable: string;
  constructor(variable: string, problem: string, options?: ErrorOptions) {
    super(`${variable} ${problem}`, options);
    this.variable = variable;
  }
}

/** A stored secret could not be decrypted: wrong key, unknown key id or tampered ciphertext. */
export class DecryptError extends Error {
  override name = "DecryptError";
}

/**
 * Why an outbound request failed before a status arrived. The kinds are stored in the attempt history,
 * so they are part of what admins read.
 */
export type OutboundErrorKind = "timeout" | "dns" | "refused" | "reset" | "tls" | "blocked" | "network";

export class OutboundError extends Error {
  override name = "OutboundError";
  readonly kind: OutboundErrorKind;
  /** The system error code behind it (`ENOTFOUND`, `ECONNREFUSED`…), when there was one. */
  readonly code: string | undefined;
  constructor(kind: OutboundErrorKind, message: string, options?: { cause?: unknown; code?: string }) {
    super(message, options);
    this.kind = kind;
    this.code = options?.code || undefined;
  }
}
