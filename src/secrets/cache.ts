import type { SecretBox } from "./box.ts";

/**
 * Opened secrets kept in memory so a delivery attempt does not decrypt the same credential every time.
 * Keyed by the sealed envelope itself: any change of the secret (an edit, a rotation, a re-seal under a new
 * key) is a new envelope, so a stale plaintext can never be served. Holds at most `max` entries (default
 * 10 000), dropping the oldest first.
 */
export class OpenedSecrets {
  private readonly cache = new Map<string, string>();
  private readonly box: SecretBox;
  private readonly max: number;

  constructor(box: SecretBox, max = 10_000) {
    this.box = box;
    this.max = max;
  }

  open(sealed: string, context: string): string {
    const key = `${context}\u0000${sealed}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const plain = this.box.open(sealed, context);
    if (this.cache.size >= this.max) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, plain);
    return plain;
  }
}
