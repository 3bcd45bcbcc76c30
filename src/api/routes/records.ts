import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { explainRecord } from "../../automations/explain.ts";
import { deleteRecordRow, eraseRecordDeliveries } from "../../retention/erase.ts";
import type { Runtime } from "../../runtime.ts";
import { audit } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { notFound } from "../errors.ts";
import { adminSecurity, errorResponses, iso, NoQuery, Nullable, PathId, Timestamp } from "../schemas.ts";

const Verdict = Type.Object({
  automation_id: Type.String(),
  name: Type.String(),
  active: Type.Boolean(),
  fired: Type.Boolean(),
  reason: Type.String({ description: "`fired`, or the first condition that failed, in words." }),
  record_version: Nullable(Type.Integer()),
});

const RecordView = Type.Object({
  id: Type.String({ description: "`rec_…`, derived from the integration and the sender's id." }),
  external_id: Type.String({ description: "The sender's `id`." }),
  integration_id: Type.String(),
  source: Type.String(),
  file_id: Type.String(),
  type: Type.String(),
  created_at: Timestamp("The feedback's own time (`createdAt`)."),
  received_at: Timestamp(),
  updated_at: Timestamp(),
  version: Type.Integer({ description: "Grows each time a mutable record is replaced." }),
  source_url: Nullable(Type.String()),
  content: Type.Unknown({ description: "Normalized content: text, messages, survey responses or audio." }),
  metadata: Type.Unknown({ description: "Normalized metadata: `{field: {type, values}}`." }),
  analysis: Nullable(Type.Unknown({ description: "Levels, the driving text and the cues behind them." })),
  automations: Type.Array(Verdict),
});

/**
 * `GET /api/records/:id`: a stored record, its analysis, and why each automation fired or did not.
 * `DELETE /api/records/:id`: deletion on request.
 */
export const recordRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  app.get(
    "/records/:id",
    {
      schema: {
        tags: ["records"],
        security: adminSecurity,
        summary: "Get a record and why it fired",
        params: Type.Object({ id: PathId("Record id (`rec_…`)") }, { additionalProperties: false }),
        querystring: NoQuery,
        response: { 200: RecordView, ...errorResponses },
      },
    },
    async (request) => {
      const found = await explainRecord(rt.database.db, adminOf(request).orgId, request.params.id);
      if (!found) throw notFound("record");
      const r = found.record;
      return {
        id: r.id,
        external_id: r.externalId,
        integration_id: r.integrationId,
        source: r.source,
        file_id: r.fileId,
        type: r.type,
        created_at: iso(r.occurredAt),
        received_at: iso(r.receivedAt),
        updated_at: iso(r.updatedAt),
        version: r.version,
        source_url: r.sourceUrl,
        content: r.content,
        metadata: r.metadata,
        analysis: found.analysis,
        automations: found.automations.map((a) => ({
          automation_id: a.id,
          name: a.name,
          active: a.active,
          fired: a.fired,
          reason: a.reason,
          record_version: a.recordVersion,
        })),
      };
    },
  );

  app.delete(
    "/records/:id",
    {
      schema: {
        tags: ["records"],
        security: adminSecurity,
        summary: "Delete a record and everything made from it",
        description:
          "Deletes the record, its analysis and evaluations, and its deliveries with their attempts (in batches, whatever their number). An alert made from it is never sent again: its pending deliveries go too. 404 for an id of another organization.",
        params: Type.Object({ id: PathId("Record id (`rec_…`)") }, { additionalProperties: false }),
        querystring: NoQuery,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      await rt.database.db.transaction(async (tx) => {
        if (!(await deleteRecordRow(tx, orgId, id))) throw notFound("record");
        // Only that it was deleted, by id: nothing of its content outlives it.
        await audit(tx, request, {
          action: "record.deleted",
          targetType: "record",
          targetId: id,
          before: { id },
          after: null,
        });
      });
      // Bounded statements after the commit; should the process die midway, what is left stays until it
      // finishes and retention prunes it.
      await eraseRecordDeliveries(rt.database.db, orgId, id);
      request.log.info({ record: request.params.id }, "record deleted on request");
      return reply.code(204).send(null);
    },
  );
};
