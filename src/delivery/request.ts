import type { AuthType } from "../db/schema.ts";
import { type SigningKeys, signatureHeaders } from "../signing/headers.ts";

export const USER_AGENT = "SupportEscalationAutomation/1.0";

/**
 * Header names a custom auth header may not take: every header the product sets itself (whatever the
 * signature scheme), and the hop-by-hop ones the HTTP client manages or refuses.
 */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "user-agent",
  "idempotency-key",
  "host",
  "authorization",
  "x-api-key",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
  "webhook-event",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
  "proxy-authorization",
  "proxy-connection",
]);

export interface DeliveryTarget {
  /** Delivery id; the `webhook-id` receivers dedupe and verify with. */
  id: string;
  eventType: string;
  idempotencyKey: string;
  payload: string;
  authType: AuthType;
  authHeaderName: string | null;
}

export interface DeliverySecrets {
  credential: string | null;
  signing: SigningKeys;
}

/**
 * The headers of one attempt. `timestamp` (Unix seconds) is the attempt's own, so a retry is signed anew
 * while `webhook-id` (the delivery id) and the body stay the same.
 */
export function deliveryHeaders(
  target: DeliveryTarget,
  secrets: DeliverySecrets,
  timestamp: number,
): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "idempotency-key": target.idempotencyKey,
    ...signatureHeaders(secrets.signing, target.id, timestamp, target.payload),
    "webhook-event": target.eventType,
  };
  const c = secrets.credential;
  if (c !== null) {
    if (target.authType === "bearer") headers.authorization = `Bearer ${c}`;
    else if (target.authType === "api_key") headers["x-api-key"] = c;
    else if (target.authType === "custom_header" && target.authHeaderName) {
      const name = target.authHeaderName.toLowerCase();
      // The API refuses reserved names; a row written around it must still not replace a signature.
      if (!RESERVED_HEADERS.has(name)) headers[name] = c;
    }
  }
  return headers;
}

/** Replaces every occurrence of the given secrets in `text`, so an echoing receiver cannot leak them into history. */
export function maskSecrets(text: string, secrets: (string | null)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}
