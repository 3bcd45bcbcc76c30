import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import {
  countLiveKeys,
  createAdminKey,
  listAdminKeys,
  MAX_KEYS_PER_ORG,
  revokeAdminKey,
} from "../../orgs.ts";
import type { Runtime } from "../../runtime.ts";
import { adminOf } from "../auth.ts";
import { ApiError, notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import { adminSecurity, errorResponses, iso, NoQuery, PathId, Timestamp } from "../schemas.ts";

const Key = Type.Object({
  id: Type.String({ description: "`key_…`" }),
  name: Type.String(),
  created_at: Timestamp(),
});

const CreatedKey = Type.Object({
  ...Key.properties,
  api_key: Type.String({ description: "The token (`esk_…`). Shown only here: only its SHA-256 is stored." }),
});

const KeyBody = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: "\\S",
      "x-message": "must not be blank",
      description: "What the key is for, e.g. `terraform`.",
    }),
  },
  { additionalProperties: false },
);

const KeyParams = Type.Object({ id: PathId("Admin API key id (`key_…`)") }, { additionalProperties: false });

/** `/api/keys`: the organization's admin API keys. */
export const keyRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;

  app.get(
    "/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "List admin API keys",
        description: "Keys that are not revoked, oldest first. Tokens are never shown again after creation.",
        security: adminSecurity,
        querystring: ListQuery,
        response: { 200: Paged(Key), ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      return answerList(
        request.query,
        "key",
        (p, n) => listAdminKeys(db, orgId, p, n),
        (k) => ({ id: k.id, name: k.name, created_at: iso(k.createdAt) }),
      );
    },
  );

  app.post(
    "/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "Create an admin API key",
        description: "Returns the token once, in `api_key`. An organization has at most 50 keys.",
        security: adminSecurity,
        querystring: NoQuery,
        body: KeyBody,
        response: { 201: CreatedKey, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const key = await db.transaction(async (tx) => {
        // Keys are not minted without limit: each is a credential to leak and, per key, a rate limit to multiply.
        if ((await countLiveKeys(tx, orgId)) >= MAX_KEYS_PER_ORG) {
          throw new ApiError(
            400,
            "ErrCodeBadRequest",
            `an organization has at most ${MAX_KEYS_PER_ORG} admin keys; revoke one first`,
          );
        }
        return createAdminKey(tx, orgId, request.body.name);
      });
      request.log.info({ key: key.id }, "admin API key created");
      return reply.code(201).send({
        id: key.id,
        name: request.body.name,
        created_at: iso(key.createdAt),
        api_key: key.token,
      });
    },
  );

  app.delete(
    "/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "Revoke an admin API key",
        description:
          "The key is refused from the next request on, including when it is the key making this call.",
        security: adminSecurity,
        params: KeyParams,
        querystring: NoQuery,
        response: { 204: Type.Null({ description: "Revoked" }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const result = await db.transaction((tx) =>
        revokeAdminKey(tx, adminOf(request).orgId, request.params.id),
      );
      if (result === "none") throw notFound("API key");
      if (result === "last") {
        throw new ApiError(
          400,
          "ErrCodeBadRequest",
          "the organization's last admin key cannot be revoked; create another first (or `escalation-shield org key create <slug>`)",
        );
      }
      request.log.info({ key: request.params.id }, "admin API key revoked");
      return reply.code(204).send(null);
    },
  );
};
