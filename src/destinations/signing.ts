import { and, eq, sql } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { type AuthType, type SignatureScheme, webhooks } from "../db/schema.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";
import { generateEd25519KeyPair } from "../signing/ed25519.ts";
import { newSigningSecret, notDeleted } from "./store.ts";

/** Longest grace period a rotation may keep the old secret signing for: 7 days, in seconds. */
export const MAX_GRACE_SECONDS = 7 * 86_400;

/** A grace period outside 0 … {@link MAX_GRACE_SECONDS} whole seconds. */
export class GracePeriodError extends RangeError {
  override name = "GracePeriodError";
}

/**
 * Replaces a destination's signing secret and returns the new one (shown once), or `undefined` when the
 * organization has no such destination. With `graceSeconds` > 0 (default 0, at most 7 days) the old secret
 * is kept and signs beside the new one until now + grace (database clock), so receivers can switch over;
 * with 0 it is dropped and stops verifying at the next attempt. A secret already in its grace period is
 * dropped by a second rotation: only one old secret is ever kept.
 */
export async function rotateSigningSecret(
  db: Executor,
  box: SecretBox,
  orgId: string,
  webhookId: string,
  graceSeconds = 0,
): Promise<{ secret: string } | undefined> {
  if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
    throw new GracePeriodError(`grace period must be 0 to ${MAX_GRACE_SECONDS} whole seconds`);
  }
  const secret = newSigningSecret();
  const sealed = box.seal(secret, sealContext.signingSecret(webhookId));
  return db.transaction(async (tx) => {
    const [row] = await tx
      .select({ current: webhooks.signingSecretSealed })
      .from(webhooks)
      .where(and(eq(webhooks.id, webhookId), eq(webhooks.orgId, orgId), notDeleted))
      .for("update");
    if (!row) return undefined;
    const previous =
      graceSeconds > 0
        ? {
            previousSigningSecretSealed: box.seal(
              box.open(row.current, sealContext.signingSecret(webhookId)),
              sealContext.previousSigningSecret(webhookId),
            ),
            previousSecretExpiresAt: sql`now() + make_interval(secs => ${graceSeconds})`,
          }
        : { previousSigningSecretSealed: null, previousSecretExpiresAt: null };
    await tx
      .update(webhooks)
      .set({ signingSecretSealed: sealed, ...previous, updatedAt: new Date() })
      .where(eq(webhooks.id, webhookId));
    return { secret };
  });
}

/**
 * Turns on Ed25519 signing (`v1a,` in the standard scheme's `webhook-signature`) and returns the base64
 * public key receivers verify with, or `undefined` when the organization has no such destination.
 * Idempotent: a destination that already has a key keeps it (disable, then enable, to replace it).
 * The `timestamped-hex` scheme has no place for it, so there the key is kept but not used.
 */
export async function enableEd25519(
  db: Executor,
  box: SecretBox,
  orgId: string,
  webhookId: string,
): Promise<{ public_key: string } | undefined> {
  const pair = generateEd25519KeyPair();
  const [row] = await db
    .update(webhooks)
    .set({
      ed25519PublicKey: sql`coalesce(${webhooks.ed25519PublicKey}, ${pair.publicKey})`,
      ed25519SecretKeySealed: sql`coalesce(${webhooks.ed25519SecretKeySealed}, ${box.seal(
        pair.secretKey,
        sealContext.ed25519SecretKey(webhookId),
      )})`,
      updatedAt: new Date(),
    })
    .where(and(eq(webhooks.id, webhookId), eq(webhooks.orgId, orgId), notDeleted))
    .returning({ publicKey: webhooks.ed25519PublicKey });
  return row?.publicKey ? { public_key: row.publicKey } : undefined;
}

/** Turns Ed25519 signing off and forgets the key pair. Returns whether the destination exists. */
export async function disableEd25519(db: Executor, orgId: string, webhookId: string): Promise<boolean> {
  const rows = await db
    .update(webhooks)
    .set({ ed25519PublicKey: null, ed25519SecretKeySealed: null, updatedAt: new Date() })
    .where(and(eq(webhooks.id, webhookId), eq(webhooks.orgId, orgId), notDeleted))
    .returning({ id: webhooks.id });
  return rows.length > 0;
}

/**
 * A destination's Ed25519 public key (base64 of the raw 32 bytes), or `undefined` when it has none.
 * Not scoped to an organization: the key is public, meant for an unauthenticated URL.
 */
export async function getPublicKey(db: Executor, webhookId: string): Promise<string | undefined> {
  const [row] = await db
    .select({ publicKey: webhooks.ed25519PublicKey })
    .from(webhooks)
    .where(and(eq(webhooks.id, webhookId), notDeleted));
  return row?.publicKey ?? undefined;
}

/** What the admin API shows about a destination's signing; no secret in it. */
export interface SigningSettings {
  signature_scheme: SignatureScheme;
  /** Base64 Ed25519 public key, or `null` when Ed25519 signing is off. */
  ed25519_public_key: string | null;
  /** Until when the previous secret still signs, or `null` when none is kept. */
  previous_secret_expires_at: Date | null;
}

/** A destination's signing settings, or `undefined` when the organization has no such destination. */
export async function getSigningSettings(
  db: Executor,
  orgId: string,
  webhookId: string,
): Promise<SigningSettings | undefined> {
  const [row] = await db
    .select({
      signature_scheme: webhooks.signatureScheme,
      ed25519_public_key: webhooks.ed25519PublicKey,
      previous_secret_expires_at: sql<Date | null>`case when ${webhooks.previousSecretExpiresAt} > now()
        then ${webhooks.previousSecretExpiresAt} end`.mapWith(webhooks.previousSecretExpiresAt),
    })
    .from(webhooks)
    .where(and(eq(webhooks.id, webhookId), eq(webhooks.orgId, orgId), notDeleted));
  return row;
}

/** Sets the signature scheme (PATCH `signature_scheme`); returns whether the destination exists. */
export async function setSignatureScheme(
  db: Executor,
  orgId: string,
  webhookId: string,
  scheme: SignatureScheme,
): Promise<boolean> {
  const rows = await db
    .update(webhooks)
    .set({ signatureScheme: scheme, updatedAt: new Date() })
    .where(and(eq(webhooks.id, webhookId), eq(webhooks.orgId, orgId), notDeleted))
    .returning({ id: webhooks.id });
  return rows.length > 0;
}

/** What signs and authenticates a webhook destination's requests, still sealed. */
export interface SealedSigning {
  authType: AuthType;
  authHeaderName: string | null;
  credentialSealed: string | null;
  signatureScheme: SignatureScheme;
  signingSecretSealed: string;
  previousSigningSecretSealed: string | null;
  previousSecretExpiresAt: Date | null;
  ed25519SecretKeySealed: string | null;
}

/** One webhook destination's sealed signing and auth material, for showing what its requests carry. */
export async function getSealedSigning(
  db: Executor,
  orgId: string,
  webhookId: string,
): Promise<SealedSigning | undefined> {
  const [row] = await db
    .select({
      authType: webhooks.authType,
      authHeaderName: webhooks.authHeaderName,
      credentialSealed: webhooks.credentialSealed,
      signatureScheme: webhooks.signatureScheme,
      signingSecretSealed: webhooks.signingSecretSealed,
      previousSigningSecretSealed: webhooks.previousSigningSecretSealed,
      previousSecretExpiresAt: webhooks.previousSecretExpiresAt,
      ed25519SecretKeySealed: webhooks.ed25519SecretKeySealed,
    })
    .from(webhooks)
    .where(and(eq(webhooks.id, webhookId), eq(webhooks.orgId, orgId)));
  return row;
}
