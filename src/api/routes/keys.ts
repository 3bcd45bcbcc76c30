import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import {
  countLiveKeys,
  createAdminKey,
  getAdminKey,
  type KeyView,
  listAdminKeys,
  MAX_KEYS_PER_ORG,
  revokeAdminKey,
} from "../../orgs.ts";
import type { Runtime } from "../../runtime.ts";
import { audit } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { ApiError, notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import { adminSecurity, errorResponses, iso, NoQuery, PathId, StringEnum, Timestamp } from "../schemas.ts";

const Scope = StringEnum(["admin", "read-only"] as const, {
  description:
    "`admin` may change anything of the organization; `read-only` may only read (403 `ErrCodeForbidden` on every write).",
});

const Key = Type.Object({
  id: Type.String({ description: "`key_…`" }),
  name: Type.String(),
  scope: Scope,
  created_at: Timestamp(),
});

const CreatedKey = Type.Object({
  ...Key.properties,
  api_key: Type.String({ description: "The token (`esk_…`). Shown only here: only its SHA-256 is stored." }),
});

const KeyBody = Type.Object(
  {
    name: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        pattern: "\\S",
        "x-message": "must not be blank",
        description: "What the key is for, e.g. `terraform`. Default: `admin key` or `read-only key`.",
      }),
    ),
    scope: Type.Optional(Scope),
  },
  { additionalProperties: false },
);

/** A key as the API and the audit log show it. */
function presentKey(k: KeyView) {
  return { id: k.id, name: k.name, scope: k.scope, created_at: iso(k.createdAt) };
}

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
      return answerList(request.query, "key", (p, n) => listAdminKeys(db, orgId, p, n), presentKey);
    },
  );

  app.get(
    "/keys/current",
    {
      schema: {
        tags: ["keys"],
        summary: "The key making this call",
        description:
          "Which key this is, its scope and its organization: what a client (the console) shows and allows.",
        security: adminSecurity,
        querystring: NoQuery,
        response: {
          200: Type.Object({
            ...Key.properties,
            organization: Type.Object({ id: Type.String({ description: "`org_…`" }), slug: Type.String() }),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const admin = adminOf(request);
      const key = await getAdminKey(db, admin.orgId, admin.keyId);
      if (!key) throw notFound("API key");
      return { ...presentKey(key), organization: { id: admin.orgId, slug: admin.orgSlug } };
    },
  );

  app.post(
    "/keys",
    {
      schema: {
        tags: ["keys"],
        summary: "Create an admin API key",
        description:
          "Returns the token once, in `api_key`. `scope` is `admin` (default) or `read-only`: a read-only key reads everything and gets 403 `ErrCodeForbidden` on every write. An organization has at most 50 keys.",
        security: adminSecurity,
        querystring: NoQuery,
        body: KeyBody,
        response: { 201: CreatedKey, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const scope = request.body.scope ?? "admin";
      const name = request.body.name ?? `${scope} key`;
      const view = await db.transaction(async (tx) => {
        // Keys are not minted without limit: each is a credential to leak and, per key, a rate limit to multiply.
        if ((await countLiveKeys(tx, orgId)) >= MAX_KEYS_PER_ORG) {
          throw new ApiError(
            400,
            "ErrCodeBadRequest",
            `an organization has at most ${MAX_KEYS_PER_ORG} admin keys; revoke one first`,
          );
        }
        const key = await createAdminKey(tx, orgId, name, scope);
        const shown = presentKey({ id: key.id, name, scope, createdAt: key.createdAt });
        await audit(tx, request, {
          action: "api_key.created",
          targetType: "api_key",
          targetId: key.id,
          before: null,
          after: shown,
        });
        return { ...shown, api_key: key.token };
      });
      request.log.info({ key: view.id, scope }, "admin API key created");
      return reply.code(201).send(view);
    },
  );

  app.delete(
    "/keys/:id",
    {
      schema: {
        tags: ["keys"],
        summary: "Revoke an admin API key",
        description:
          "The key is refused from the next request on, including when it is the key making this call. The organization's last `admin` key cannot be revoked (400).",
        security: adminSecurity,
        params: KeyParams,
        querystring: NoQuery,
        response: { 204: Type.Null({ description: "Revoked" }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const result = await db.transaction(async (tx) => {
        const revoked = await revokeAdminKey(tx, adminOf(request).orgId, request.params.id);
        if (typeof revoked === "object") {
          await audit(tx, request, {
            action: "api_key.revoked",
            targetType: "api_key",
            targetId: revoked.id,
            before: presentKey(revoked),
            after: null,
          });
        }
        return revoked;
      });
      if (result === "none") throw notFound("API key");
      if (result === "last") {
        throw new ApiError(
          400,
          "ErrCodeBadRequest",
          "the organization's last admin-scoped key cannot be revoked; create another first (or `escalation-shield org key create <slug>`)",
        );
      }
      request.log.info({ key: request.params.id }, "admin API key revoked");
      return reply.code(204).send(null);
    },
  );
};
