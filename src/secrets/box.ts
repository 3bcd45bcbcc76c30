import sodium from "libsodium-wrappers";
import { DecryptError } from "../errors.ts";

await sodium.ready;

const VERSION = "es1";

/** A 32-byte key and the short id stored beside every ciphertext made with it. */
export interface SecretsKey {
  id: string;
  key: Uint8Array;
}

/** Derives the key id from the key itself, so the same key always has the same id on every machine. */
export function secretsKeyFromBase64(b64: string): SecretsKey {
  const key = sodium.from_base64(b64, sodium.base64_variants.ORIGINAL);
  if (key.length !== sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES) {
    throw new DecryptError("a secrets key must be 32 bytes");
  }
  const id = sodium.to_hex(sodium.crypto_generichash(6, key, "escalation-shield key id"));
  return { id, key };
}

/** A fresh random key in base64, as `escalation-shield keygen` prints it. */
export function generateSecretsKey(): string {
  return sodium.to_base64(
    sodium.crypto_aead_xchacha20poly1305_ietf_keygen(),
    sodium.base64_variants.ORIGINAL,
  );
}

/**
 * Seals and opens secrets with XChaCha20-Poly1305. The envelope is `es1.<key id>.<nonce>.<ciphertext>`;
 * `context` (for example `webhook:whe_…:credential`) is authenticated too, so a sealed value copied into
 * another row or column does not open.
 */
export class SecretBox {
  readonly current: SecretsKey;
  private readonly keys: Map<string, SecretsKey>;

  constructor(current: SecretsKey, previous: SecretsKey[] = []) {
    this.current = current;
    this.keys = new Map([...previous, current].map((k) => [k.id, k]));
  }

  /** Ids of every key this box can open with: SECRETS_KEY and each SECRETS_KEY_PREVIOUS. */
  keyIds(): string[] {
    return [...this.keys.keys()];
  }

  seal(plaintext: string, context: string): string {
    const nonce = sodium.randombytes_buf(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      plaintext,
      context,
      null,
      nonce,
      this.current.key,
    );
    const b64 = (b: Uint8Array) => sodium.to_base64(b, sodium.base64_variants.URLSAFE_NO_PADDING);
    return `${VERSION}.${this.current.id}.${b64(nonce)}.${b64(ct)}`;
  }

  open(envelope: string, context: string): string {
    const parts = envelope.split(".");
    if (parts.length !== 4 || parts[0] !== VERSION) throw new DecryptError("not a sealed secret");
    const [, keyId, nonceB64, ctB64] = parts as [string, string, string, string];
    const key = this.keys.get(keyId);
    if (!key) {
      throw new DecryptError(
        `secret was sealed with key ${keyId}, which is neither SECRETS_KEY (${this.current.id}) nor SECRETS_KEY_PREVIOUS`,
      );
    }
    try {
      const from = (s: string) => sodium.from_base64(s, sodium.base64_variants.URLSAFE_NO_PADDING);
      const pt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
        null,
        from(ctB64),
        context,
        from(nonceB64),
        key.key,
      );
      return sodium.to_string(pt);
    } catch (cause) {
      throw new DecryptError(
        `secret sealed with key ${keyId} failed authentication (wrong key or tampered)`,
        {
          cause,
        },
      );
    }
  }

  /** The key id an envelope was sealed with, without opening it. */
  static keyIdOf(envelope: string): string | undefined {
    return envelope.split(".")[1];
  }
}
