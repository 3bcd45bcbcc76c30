import { createRequire } from "node:module";

// Seed 004's Node.js verification function, copied as the seed prints it (types added for strict TS).
const require = createRequire(import.meta.url);
// biome-ignore lint/style/useNodejsImportProtocol: as seed 004 writes it
const crypto = require("crypto");
export function seed004VerifyWebhook(body: string, signatureHeader: string, secret: string): boolean {
  // Parse the signature header: "t=<timestamp>,v1=<hmac>"
  const parts = Object.fromEntries(signatureHeader.split(",").map((p) => p.split("=")));
  const timestamp = parts.t;
  const signature = parts.v1;

  // Recreate the signed payload
  const signedPayload = `${timestamp}.${body}`;
  const expected = crypto.createHmac("sha256", secret).update(signedPayload).digest("hex");

  return crypto.timingSafeEqual(Buffer.from(signature, "hex"), Buffer.from(expected, "hex"));
}
