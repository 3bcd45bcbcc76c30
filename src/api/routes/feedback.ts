import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import {
  createIntegration,
  deleteIntegration,
  type FeedbackIntegration,
  getIntegration,
  listIntegrations,
  rotateIntegrationKey,
  updateIntegration,
} from "../../ingestion/store.ts";
import type { Runtime } from "../../runtime.ts";
import { auditTarget } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import {
  adminSecurity,
  EmptyBody,
  errorResponses,
  iso,
  NoQuery,
  Nullable,
  noBodyIsEmpty,
  PathId,
  Timestamp,
} from "../schemas.ts";

const Integration = Type.Object({
  id: Type.String({ description: "`fbi_…`" }),
  display_name: Type.String({ description: "Becomes the `source` of its records and of their alerts." }),
  description: Nullable(Type.String()),
  data_mutability: Type.Boolean({
    description: "On: a resent record id replaces the record whole. Off (default): resent ids are skipped.",
  }),
  created_at: Timestamp(),
  updated_at: Timestamp(),
});

const WithKey = Type.Object({
  ...Integration.properties,
  api_key: Type.String({
    description:
      "The ingestion key for the `api-key` header (`esf_…`). Shown only here: only its SHA-256 is kept.",
  }),
});

const DisplayName = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: "\\S",
  "x-message": "must not be blank",
});
const Description = Nullable(Type.String({ maxLength: 2000 }));

const CreateBody = Type.Object(
  {
    display_name: DisplayName,
    description: Type.Optional(Description),
    data_mutability: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object(
  {
    display_name: Type.Optional(DisplayName),
    description: Type.Optional(Description),
    data_mutability: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const Params = Type.Object(
  { id: PathId("Feedback integration id (`fbi_…`)") },
  { additionalProperties: false },
);

function view(i: FeedbackIntegration) {
  return {
    id: i.id,
    display_name: i.displayName,
    description: i.description,
    data_mutability: i.dataMutability,
    created_at: iso(i.createdAt),
    updated_at: iso(i.updatedAt),
  };
}

/** `/api/integrations/feedback`: where feedback comes from, and the keys that send it. */
const auditIntegration = auditTarget("feedback_integration");

export const feedbackRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  const common = { tags: ["feedback"], security: adminSecurity };

  app.get(
    "/integrations/feedback",
    {
      schema: {
        ...common,
        summary: "List feedback integrations",
        description: "Newest first.",
        querystring: ListQuery,
        response: { 200: Paged(Integration), ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      return answerList(request.query, "fbi", (p, n) => listIntegrations(db, orgId, p, n), view);
    },
  );

  app.post(
    "/integrations/feedback",
    {
      schema: {
        ...common,
        summary: "Create a feedback integration",
        description: "Returns the ingestion `api_key` once.",
        body: CreateBody,
        response: { 201: WithKey, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const { integration, apiKey } = await db.transaction(async (tx) => {
        const made = await createIntegration(tx, adminOf(request).orgId, {
          displayName: b.display_name,
          description: b.description ?? null,
          dataMutability: b.data_mutability ?? false,
        });
        await auditIntegration(tx, request, "created", made.integration.id, null, view(made.integration));
        return made;
      });
      return reply.code(201).send({ ...view(integration), api_key: apiKey });
    },
  );

  app.get(
    "/integrations/feedback/:id",
    {
      schema: {
        ...common,
        summary: "Get a feedback integration",
        params: Params,
        querystring: NoQuery,
        response: { 200: Integration, ...errorResponses },
      },
    },
    async (request) => {
      const found = await getIntegration(db, adminOf(request).orgId, request.params.id);
      if (!found) throw notFound("feedback integration");
      return view(found);
    },
  );

  app.patch(
    "/integrations/feedback/:id",
    {
      schema: {
        ...common,
        summary: "Update a feedback integration",
        params: Params,
        body: PatchBody,
        response: { 200: Integration, ...errorResponses },
      },
    },
    async (request) => {
      const b = request.body;
      const { orgId } = adminOf(request);
      const { id } = request.params;
      return db.transaction(async (tx) => {
        const before = await getIntegration(tx, orgId, id, { forUpdate: true });
        const updated =
          before &&
          (await updateIntegration(tx, orgId, id, {
            ...(b.display_name !== undefined ? { displayName: b.display_name } : {}),
            ...(b.description !== undefined ? { description: b.description } : {}),
            ...(b.data_mutability !== undefined ? { dataMutability: b.data_mutability } : {}),
          }));
        if (!before || !updated) throw notFound("feedback integration");
        await auditIntegration(tx, request, "updated", id, view(before), view(updated));
        return view(updated);
      });
    },
  );

  app.delete(
    "/integrations/feedback/:id",
    {
      schema: {
        ...common,
        summary: "Delete a feedback integration",
        description: "Its key stops working at once; its records are deleted with it.",
        params: Params,
        querystring: NoQuery,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      await db.transaction(async (tx) => {
        const before = await getIntegration(tx, orgId, id, { forUpdate: true });
        if (!before || !(await deleteIntegration(tx, orgId, id))) throw notFound("feedback integration");
        await auditIntegration(tx, request, "deleted", id, view(before), null);
      });
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/integrations/feedback/:id/rotate-key",
    {
      preValidation: noBodyIsEmpty,
      schema: {
        ...common,
        summary: "Rotate the ingestion key",
        description: "Returns the new `api_key` once; the old key is refused at once.",
        params: Params,
        body: EmptyBody,
        response: { 200: Type.Object({ api_key: Type.String() }), ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      const apiKey = await db.transaction(async (tx) => {
        const before = await getIntegration(tx, orgId, id, { forUpdate: true });
        const rotated = before && (await rotateIntegrationKey(tx, orgId, id));
        const after = rotated && (await getIntegration(tx, orgId, id));
        if (!before || !rotated || !after) throw notFound("feedback integration");
        // The key itself is never recorded: that it changed, and when, is the change.
        await auditIntegration(tx, request, "key_rotated", id, view(before), view(after));
        return rotated;
      });
      return { api_key: apiKey };
    },
  );
};
