import { createHmac } from "node:crypto";

/**
 * Standard Webhooks signature (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`). The HMAC key is
 * the UTF-8 bytes of the whole `whs_…` secret, so receivers verify with
 * `new Webhook(secret, { format: "raw" })`. `timestamp` is in Unix seconds.
 */
export function standardSignature(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${id}.${timestamp}.${body}`).digest("base64");
  return `v1,${mac}`;
}
