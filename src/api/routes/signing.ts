import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { disableEd25519, enableEd25519, getPublicKey } from "../../destinations/signing.ts";
import type { Runtime } from "../../runtime.ts";
import { adminOf } from "../auth.ts";
import { notFound } from "../errors.ts";
import { limitRequests } from "../rate-limit.ts";
import {
  adminSecurity,
  EmptyBody,
  errorResponses,
  NoQuery,
  noBodyIsEmpty,
  PathId,
  StringEnum,
} from "../schemas.ts";
import { auditWebhook, loadWebhook } from "./webhooks.ts";

/**
 * How long receivers and proxies may reuse a fetched public key. Short, because a replaced key (disable, then
 * enable) should stop being trusted soon; long enough that a receiver verifying every request does not need
 * a fetch per request.
 */
export const PUBLIC_KEY_MAX_AGE_SECONDS = 60;

/** The unauthenticated address of a destination's public key, absolute so receivers can fetch it as it is. */
export function publicKeyUrl(publicUrl: string, webhookId: string): string {
  return `${publicUrl}/webhooks/${encodeURIComponent(webhookId)}/public-key`;
}

const PublicKey = Type.String({
  description: "Base64 (standard alphabet, padded) of the raw 32-byte Ed25519 public key.",
});

const Algorithm = StringEnum(["ed25519"]);

const IdParams = Type.Object(
  { id: PathId("Webhook destination id (`whe_…`)") },
  { additionalProperties: false },
);

/** `/api/integrations/webhooks/:id/signing-key`: turns Ed25519 (`v1a,`) signatures on and off. */
export const signingKeyRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  const tags = ["webhooks"];
  const security = adminSecurity;

  app.post(
    "/integrations/webhooks/:id/signing-key",
    {
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        security,
        summary: "Enable Ed25519 signatures",
        description:
          "Creates an Ed25519 key pair for the destination; from the next attempt on, the standard scheme's `webhook-signature` also carries `v1a,<base64 signature>` over `<id>.<timestamp>.<body>`, next to the `v1,` HMAC signatures. The private key never leaves the server; the public key is also served without an admin key at `public_key_url`. Idempotent: a destination that has a key keeps it (delete, then create, to replace it). The `timestamped-hex` scheme has no room for it, so there the key is kept but not used.",
        params: IdParams,
        querystring: NoQuery,
        body: EmptyBody,
        response: {
          201: Type.Object({
            public_key: PublicKey,
            algorithm: Algorithm,
            public_key_url: Type.String({
              format: "uri",
              description: "Where receivers fetch the public key, without an admin key.",
            }),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { orgId } = adminOf(request);
      const enabled = await db.transaction(async (tx) => {
        const before = await loadWebhook(tx, orgId, id, { forUpdate: true });
        const done = before && (await enableEd25519(tx, rt.box, orgId, id));
        if (!done) return undefined;
        await auditWebhook(tx, request, "signing_key_enabled", id, before, await loadWebhook(tx, orgId, id));
        return done;
      });
      if (enabled === undefined) throw notFound("webhook destination");
      request.log.info({ webhook: id }, "ed25519 signing enabled");
      return reply.code(201).send({
        public_key: enabled.public_key,
        algorithm: "ed25519" as const,
        public_key_url: publicKeyUrl(rt.config.publicUrl, id),
      });
    },
  );

  app.delete(
    "/integrations/webhooks/:id/signing-key",
    {
      schema: {
        tags,
        security,
        summary: "Disable Ed25519 signatures",
        description:
          "Forgets the key pair: from the next attempt on no `v1a,` signature is sent, and the public key URL answers 404. Also 204 when Ed25519 signing was already off.",
        params: IdParams,
        querystring: NoQuery,
        response: { 204: Type.Null({ description: "Disabled" }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const { orgId } = adminOf(request);
      await db.transaction(async (tx) => {
        const before = await loadWebhook(tx, orgId, id, { forUpdate: true });
        if (!before || !(await disableEd25519(tx, orgId, id))) throw notFound("webhook destination");
        await auditWebhook(tx, request, "signing_key_disabled", id, before, await loadWebhook(tx, orgId, id));
      });
      request.log.info({ webhook: id }, "ed25519 signing disabled");
      return reply.code(204).send(null);
    },
  );
};

/**
 * `GET /webhooks/:id/public-key`, outside `/api`: receivers fetch the key without an admin key. The key is
 * public by nature, but the route answers the same 404 for unknown ids and for destinations without a key,
 * and is rate-limited per client address, so it is no cheap oracle for which ids exist.
 */
export const publicKeyRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  await limitRequests(app, rt, {
    name: "public-key",
    max: rt.config.validateRateLimitPerMinute,
    per: "client address",
    key: (request) => request.ip,
  });

  app.get(
    "/webhooks/:id/public-key",
    {
      schema: {
        tags: ["signing"],
        summary: "A destination's Ed25519 public key",
        description: `No key needed. The public key to verify the \`v1a,\` signatures of a destination's deliveries with (Standard Webhooks asymmetric signatures). 404 \`ErrCodeNotFound\` when the destination does not exist or has Ed25519 signing off. Cacheable for ${PUBLIC_KEY_MAX_AGE_SECONDS} s. Rate limit: VALIDATE_RATE_LIMIT_PER_MINUTE per client address (default 60).`,
        params: IdParams,
        querystring: NoQuery,
        response: {
          200: Type.Object({
            webhook_id: Type.String({ description: "`whe_…`" }),
            algorithm: Algorithm,
            public_key: PublicKey,
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const publicKey = await getPublicKey(rt.database.db, id);
      if (publicKey === undefined) throw notFound("public key");
      void reply.header("cache-control", `public, max-age=${PUBLIC_KEY_MAX_AGE_SECONDS}`);
      return { webhook_id: id, algorithm: "ed25519" as const, public_key: publicKey };
    },
  );
};
