import { deliveryHeaders, maskSecrets } from "../delivery/request.ts";
import { parseRetryAfter } from "../delivery/schedule.ts";
import { OutboundError } from "../errors.ts";
import { ATTEMPT_TIMEOUT_MS } from "../outbound/http.ts";
import { sealContext } from "../secrets/contexts.ts";
import type { SigningKeys } from "../signing/headers.ts";
import { type Channel, noAnswer, readLimit, type Sent } from "./channel.ts";

/** Bytes of response body stored with an attempt. */
export const EXCERPT_BYTES = 2048;

/**
 * Webhooks: the frozen payload POSTed as it is, signed (Standard Webhooks or `t=…,v1=…`), with the
 * destination's auth header and the `Idempotency-Key`. Any 2xx is delivered; anything else is tried again
 * on the schedule, and 5xx, 429 and no answer at all count against the destination's health.
 */
export const webhookChannel: Channel = {
  async send(deps, claimed, startedAt): Promise<Sent> {
    const wh = claimed.webhookId;
    const open = (sealed: string | null, context: string) =>
      sealed ? deps.secrets.open(sealed, context) : null;
    const credential = open(claimed.credentialSealed, sealContext.credential(wh));
    const signing: SigningKeys = {
      scheme: claimed.signatureScheme,
      secret: deps.secrets.open(claimed.signingSecretSealed, sealContext.signingSecret(wh)),
      previousSecret: open(claimed.previousSigningSecretSealed, sealContext.previousSigningSecret(wh)),
      ed25519SecretKey: open(claimed.ed25519SecretKeySealed, sealContext.ed25519SecretKey(wh)),
    };
    // Nothing secret may come back through the history: an echoing receiver repeats what it was sent.
    const secrets = [credential, signing.secret, signing.previousSecret, signing.ed25519SecretKey];
    const headers = deliveryHeaders(claimed, { credential, signing }, Math.floor(startedAt.getTime() / 1000));
    try {
      const res = await deps.http.send({
        method: "POST",
        url: claimed.url,
        headers,
        body: claimed.payload,
        timeoutMs: ATTEMPT_TIMEOUT_MS,
        maxBodyBytes: readLimit(EXCERPT_BYTES, secrets),
      });
      const status = res.status;
      const ok = status >= 200 && status < 300;
      return {
        status,
        errorKind: null,
        errorMessage: null,
        responseExcerpt: maskSecrets(res.bodyExcerpt, secrets).slice(0, EXCERPT_BYTES),
        durationMs: res.durationMs,
        verdict: ok
          ? { kind: "delivered" }
          : {
              kind: "retry",
              // A destination that answers, even with a 4xx, is up; 5xx and 429 count against it.
              healthy: status < 500 && status !== 429,
              retryAfterS:
                status === 429 || status === 503 ? parseRetryAfter(res.headers["retry-after"]) : undefined,
            },
      };
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err;
      return noAnswer(deps, claimed, err, secrets, startedAt);
    }
  },
};
