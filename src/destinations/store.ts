import { and, eq } from "drizzle-orm";
import type { Executor } from "../db/client.ts";
import { type AuthType, type SignatureScheme, webhooks } from "../db/schema.ts";
import { newId, newToken } from "../ids.ts";
import type { SecretBox } from "../secrets/box.ts";
import { sealContext } from "../secrets/contexts.ts";

/** A destination as given by an admin; the credential is plaintext here and sealed before it is stored. */
export interface WebhookInput {
  url: string;
  events: string[];
  enabled?: boolean;
  description?: string | null;
  auth?: { type: AuthType; credential?: string | null; headerName?: string | null };
  signatureScheme?: SignatureScheme;
}

/** A new signing secret: `whs_` and 32 random bytes in base64url. */
export function newSigningSecret(): string {
  return newToken("whs_");
}

/** Creates a destination; returns its id and the signing secret, which is never readable again. */
export async function createWebhook(
  db: Executor,
  box: SecretBox,
  orgId: string,
  input: WebhookInput,
): Promise<{ id: string; secret: string }> {
  const id = newId("whe");
  const secret = newSigningSecret();
  const auth = input.auth ?? { type: "none" };
  await db.insert(webhooks).values({
    id,
    orgId,
    url: input.url,
    events: input.events,
    enabled: input.enabled ?? true,
    description: input.description ?? null,
    authType: auth.type,
    authHeaderName: auth.type === "custom_header" ? (auth.headerName ?? null) : null,
    credentialSealed:
      auth.type !== "none" && auth.credential ? box.seal(auth.credential, sealContext.credential(id)) : null,
    signingSecretSealed: box.seal(secret, sealContext.signingSecret(id)),
    signatureScheme: input.signatureScheme ?? "standard",
  });
  return { id, secret };
}

/** Sets a destination's credential (sealed), or clears it with `null`. Scoped to the organization. */
export async function setWebhookCredential(
  db: Executor,
  box: SecretBox,
  orgId: string,
  id: string,
  credential: string | null,
): Promise<void> {
  await db
    .update(webhooks)
    .set({
      credentialSealed: credential ? box.seal(credential, sealContext.credential(id)) : null,
      updatedAt: new Date(),
    })
    .where(and(eq(webhooks.id, id), eq(webhooks.orgId, orgId)));
}
