import { createHmac } from "node:crypto";

/**
 * The `timestamped-hex` signature of seed 004: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`,
 * keyed with the UTF-8 bytes of the whole `whs_…` secret. `timestamp` is in Unix seconds. Only one `v1` is
 * ever sent: seed 004's verifier keeps the last `v1` of the header, so a second one would hide the first.
 */
export function timestampedHexSignature(secret: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  return `t=${timestamp},v1=${mac}`;
}
