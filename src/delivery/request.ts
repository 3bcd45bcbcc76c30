import type { AuthType } from "../db/schema.ts";
import { standardSignature } from "../signing/standard.ts";

export const USER_AGENT = "SupportEscalationAutomation/1.0";

/** Header names the product sets itself; a custom auth header may not take one of them. */
export const RESERVED_HEADERS = new Set([
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
  "transfer-encoding",
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
  signingSecret: string;
}

/** The headers of one attempt. `timestamp` (Unix seconds) is the attempt's own. */
export function deliveryHeaders(
  target: DeliveryTarget,
  secrets: DeliverySecrets,
  timestamp: number,
): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": USER_AGENT,
    "idempotency-key": target.idempotencyKey,
    "webhook-id": target.id,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": standardSignature(secrets.signingSecret, target.id, timestamp, target.payload),
    "webhook-event": target.eventType,
  };
  const c = secrets.credential;
  if (c !== null) {
    if (target.authType === "bearer") headers.authorization = `Bearer ${c}`;
    else if (target.authType === "api_key") headers["x-api-key"] = c;
    else if (target.authType === "custom_header" && target.authHeaderName)
      headers[target.authHeaderName.toLowerCase()] = c;
  }
  return headers;
}

/** Replaces every occurrence of the given secrets in `text`, so an echoing receiver cannot leak them into history. */
export function maskSecrets(text: string, secrets: (string | null)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}
