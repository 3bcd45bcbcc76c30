import { deliveryHeaders } from "../delivery/request.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";
import type { SealedSigning } from "./signing.ts";

/** What a credential reads as wherever a request is shown. */
export const MASKED_CREDENTIAL = "••••••••";
/** What a signature reads as for a key that may not see one (it would let the key holder replay the request). */
export const HIDDEN_SIGNATURE = "(shown to admin keys only)";

/**
 * The headers a webhook delivery is sent with, as the API and the console show them: the credential masked,
 * the signature computed for the timestamp of `at` (the last attempt's start, or now before any attempt)
 * with the destination's signing secrets as they are now, or hidden unless `revealSignature`.
 */
export function shownRequestHeaders(
  box: SecretBox,
  webhookId: string,
  delivery: { id: string; eventType: string; idempotencyKey: string; payload: string },
  sealed: SealedSigning,
  at: Date,
  revealSignature: boolean,
): Record<string, string> {
  const open = (value: string | null, context: string) => (value ? box.open(value, context) : null);
  const graceRuns = sealed.previousSecretExpiresAt !== null && sealed.previousSecretExpiresAt > at;
  const headers = deliveryHeaders(
    { ...delivery, authType: sealed.authType, authHeaderName: sealed.authHeaderName },
    {
      credential: sealed.credentialSealed ? MASKED_CREDENTIAL : null,
      signing: {
        scheme: sealed.signatureScheme,
        secret: box.open(sealed.signingSecretSealed, sealContext.signingSecret(webhookId)),
        previousSecret: graceRuns
          ? open(sealed.previousSigningSecretSealed, sealContext.previousSigningSecret(webhookId))
          : null,
        ed25519SecretKey: open(sealed.ed25519SecretKeySealed, sealContext.ed25519SecretKey(webhookId)),
      },
    },
    Math.floor(at.getTime() / 1000),
  );
  if (!revealSignature) headers["webhook-signature"] = HIDDEN_SIGNATURE;
  return headers;
}
