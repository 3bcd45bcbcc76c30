import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { listAuditEvents } from "../../audit/log.ts";
import type { Runtime } from "../../runtime.ts";
import { adminOf } from "../auth.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import { adminSecurity, errorResponses, iso, Nullable, Timestamp } from "../schemas.ts";

const AuditEvent = Type.Object({
  id: Type.String({ description: "`aud_…`" }),
  at: Timestamp(),
  key_id: Nullable(Type.String(), {
    description: "The admin API key that made the change (`key_…`); null for the CLI.",
  }),
  action: Type.String({
    description: "`<target_type>.<verb>`, e.g. `webhook.updated`, `api_key.revoked`, `delivery.retried`.",
  }),
  target_type: Type.String({
    description:
      "`webhook`, `slack`, `email`, `automation`, `feedback_integration`, `api_key`, `record` or `delivery`.",
  }),
  target_id: Type.String(),
  changes: Type.Object(
    {
      before: Type.Unknown({
        description: "The target as the API showed it before; null when it did not exist.",
      }),
      after: Type.Unknown({ description: "…and after; null when it is gone." }),
    },
    { description: "Secrets (signing secrets, tokens, credentials, Slack URLs) are never recorded." },
  ),
  reference_id: Nullable(Type.String(), { description: "The request's referenceID; null for the CLI." }),
});

/** `GET /api/audit-log`: every configuration change of the organization, newest first. */
export const auditLogRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  app.get(
    "/audit-log",
    {
      schema: {
        tags: ["audit log"],
        summary: "List configuration changes",
        description:
          "Every change made through the admin API (destinations, automations, feedback integrations, keys, rotations, retries, recovers, test events, deletions) and keys made by the CLI, newest first, kept for AUDIT_RETENTION (default 365 days).",
        security: adminSecurity,
        querystring: ListQuery,
        response: { 200: Paged(AuditEvent), ...errorResponses },
      },
    },
    async (request) =>
      answerList(
        request.query,
        "aud",
        (p, n) => listAuditEvents(rt.database.db, adminOf(request).orgId, p, n),
        (e) => ({
          id: e.id,
          at: iso(e.at),
          key_id: e.keyId,
          action: e.action,
          target_type: e.targetType,
          target_id: e.targetId,
          changes: e.changes,
          reference_id: e.referenceId,
        }),
      ),
  );
};
