import sodium from "libsodium-wrappers";

await sodium.ready;

/** A fresh Ed25519 key pair (libsodium `crypto_sign_keypair`), both halves in standard base64. */
export function generateEd25519KeyPair(): { publicKey: string; secretKey: string } {
  const pair = sodium.crypto_sign_keypair();
  const b64 = (b: Uint8Array) => sodium.to_base64(b, sodium.base64_variants.ORIGINAL);
  return { publicKey: b64(pair.publicKey), secretKey: b64(pair.privateKey) };
}

/**
 * Standard Webhooks asymmetric signature: `v1a,<base64 Ed25519 signature of "<id>.<timestamp>.<body>">`
 * (libsodium `crypto_sign_detached`). `secretKey` is the 64-byte libsodium secret key in base64;
 * `timestamp` is in Unix seconds.
 */
export function ed25519Signature(secretKey: string, id: string, timestamp: number, body: string): string {
  const key = sodium.from_base64(secretKey, sodium.base64_variants.ORIGINAL);
  const sig = sodium.crypto_sign_detached(`${id}.${timestamp}.${body}`, key);
  return `v1a,${sodium.to_base64(sig, sodium.base64_variants.ORIGINAL)}`;
}
