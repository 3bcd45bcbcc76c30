import type { SignatureScheme } from "../db/schema.ts";
import { ed25519Signature } from "./ed25519.ts";
import { standardSignature } from "./standard.ts";
import { timestampedHexSignature } from "./timestamped.ts";

/** The opened signing material of one destination, as one attempt needs it. */
export interface SigningKeys {
  scheme: SignatureScheme;
  /** The current `whs_…` secret. */
  secret: string;
  /** The secret replaced by a rotation, while its grace period lasts; `null` otherwise. */
  previousSecret: string | null;
  /** libsodium Ed25519 secret key (base64) when Ed25519 signing is enabled; `null` otherwise. */
  ed25519SecretKey: string | null;
}

/**
 * `webhook-id`, `webhook-timestamp` and `webhook-signature` for one attempt. `timestamp` is the attempt's
 * own Unix seconds. In the standard scheme the header lists `v1,<new>`, then `v1,<old>` during a rotation's
 * grace period, then `v1a,<ed25519>`; receivers accept the request when any one of them verifies.
 * `timestamped-hex` carries only the current secret's `t=…,v1=…` (it has no room for a second `v1`).
 */
export function signatureHeaders(
  keys: SigningKeys,
  id: string,
  timestamp: number,
  body: string,
): Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string> {
  let signature: string;
  if (keys.scheme === "timestamped-hex") {
    signature = timestampedHexSignature(keys.secret, timestamp, body);
  } else {
    const parts = [standardSignature(keys.secret, id, timestamp, body)];
    if (keys.previousSecret !== null) parts.push(standardSignature(keys.previousSecret, id, timestamp, body));
    if (keys.ed25519SecretKey !== null)
      parts.push(ed25519Signature(keys.ed25519SecretKey, id, timestamp, body));
    signature = parts.join(" ");
  }
  return { "webhook-id": id, "webhook-timestamp": String(timestamp), "webhook-signature": signature };
}
