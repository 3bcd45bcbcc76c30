import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { SLACK_DEFAULT_RATE_PER_SECOND } from "../../channels/slack.ts";
import { heldCounts } from "../../delivery/history.ts";
import { createSlack, getSlack, listSlack, type SlackView, updateSlack } from "../../destinations/slack.ts";
import { deleteWebhook } from "../../destinations/store.ts";
import { compilePolicy, destinationUrlProblem } from "../../outbound/guard.ts";
import type { Runtime } from "../../runtime.ts";
import { adminOf } from "../auth.ts";
import { invalidField, notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import { adminSecurity, errorResponses, iso, NoQuery, Nullable, PathId, Timestamp } from "../schemas.ts";
import { afterEnabledChange, checkEvents, Events, Held } from "./webhooks.ts";

const WebhookUrl = Type.String({
  maxLength: 2048,
  description:
    "The Slack incoming-webhook URL (`https://hooks.slack.com/services/…`). It is a secret: write-only, shown masked.",
});
const Name = Nullable(Type.String({ minLength: 1, maxLength: 100 }));
const SlackRate = Type.Optional(
  Nullable(
    Type.Number({
      exclusiveMinimum: 0,
      maximum: 1000,
      description: `Most messages per second, across all workers (fractional allowed). Null or absent: ${SLACK_DEFAULT_RATE_PER_SECOND} per second, Slack's documented limit.`,
    }),
  ),
);

const CreateBody = Type.Object(
  {
    name: Type.Optional(Name),
    webhook_url: WebhookUrl,
    events: Events,
    enabled: Type.Optional(Type.Boolean({ default: true })),
    rate_limit_per_second: SlackRate,
  },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  {
    name: Type.Optional(Name),
    webhook_url: Type.Optional(WebhookUrl),
    events: Type.Optional(Events),
    enabled: Type.Optional(Type.Boolean()),
    rate_limit_per_second: SlackRate,
  },
  {
    additionalProperties: false,
    description: "Every field is optional; the ones given replace the stored ones.",
  },
);

const Slack = Type.Object({
  id: Type.String({ description: "`slk_…`" }),
  kind: Type.Literal("slack"),
  name: Nullable(Type.String()),
  webhook_url: Type.String({ description: "Masked: the URL itself is never shown again." }),
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  rate_limit_per_second: Type.Number({ description: "The rate the destination is held to." }),
  disabled_reason: Nullable(Type.String()),
  created_at: Timestamp(),
  updated_at: Timestamp(),
});
const SlackWithHeld = Type.Object({ ...Slack.properties, held: Held });

const IdParams = Type.Object(
  { id: PathId("Slack destination id (`slk_…`)") },
  { additionalProperties: false },
);

function present(s: SlackView) {
  return {
    id: s.id,
    kind: "slack" as const,
    name: s.name,
    webhook_url: s.maskedUrl,
    events: s.events,
    enabled: s.enabled,
    rate_limit_per_second: s.rateLimitPerSecond ?? SLACK_DEFAULT_RATE_PER_SECOND,
    disabled_reason: s.disabledReason,
    created_at: iso(s.createdAt),
    updated_at: iso(s.updatedAt),
  };
}

/**
 * `/api/integrations/slack`: Slack destinations. Their history, retry, recover and test events are the same
 * routes as every kind's (deliveries.ts).
 */
export const slackRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  const policy = compilePolicy({ allowlist: rt.config.destinationAllowlist, dnsServers: [] });
  const common = { tags: ["slack"], security: adminSecurity };
  // The same outbound rules as webhooks: https only (unless allowed), no private or metadata addresses.
  const checkUrl = (url: string | undefined) => {
    if (url === undefined) return;
    const problem = destinationUrlProblem(url, { allowHttp: rt.config.allowHttpDestinations, policy });
    if (problem) throw invalidField("body.webhook_url", problem);
  };

  app.get(
    "/integrations/slack",
    {
      schema: {
        ...common,
        summary: "List Slack destinations",
        description: "Oldest first.",
        querystring: ListQuery,
        response: { 200: Paged(Slack), ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      return answerList(request.query, "slk", (p, n) => listSlack(db, orgId, p, n), present);
    },
  );

  app.post(
    "/integrations/slack",
    {
      schema: {
        ...common,
        summary: "Create a Slack destination",
        querystring: NoQuery,
        body: CreateBody,
        response: { 201: Slack, ...errorResponses },
      },
    },
    async (request, reply) => {
      const b = request.body;
      checkUrl(b.webhook_url);
      checkEvents(b.events);
      const created = await createSlack(db, rt.box, adminOf(request).orgId, {
        name: b.name ?? null,
        webhookUrl: b.webhook_url,
        events: b.events,
        enabled: b.enabled ?? true,
        rateLimitPerSecond: b.rate_limit_per_second ?? null,
      });
      request.log.info({ webhook: created.id }, "Slack destination created");
      return reply.code(201).send(present(created));
    },
  );

  app.get(
    "/integrations/slack/:id",
    {
      schema: {
        ...common,
        summary: "Get a Slack destination",
        params: IdParams,
        querystring: NoQuery,
        response: { 200: SlackWithHeld, ...errorResponses },
      },
    },
    async (request) => {
      const found = await getSlack(db, adminOf(request).orgId, request.params.id);
      if (!found) throw notFound("Slack destination");
      const held = await heldCounts(db, found.id, rt.config.deliveryRetentionMs);
      return {
        ...present(found),
        held: { total: held.total, past_retention: held.pastRetention, estimated: held.estimated },
      };
    },
  );

  app.patch(
    "/integrations/slack/:id",
    {
      schema: {
        ...common,
        summary: "Update a Slack destination",
        description:
          "`enabled: false` stops deliveries at once and holds the pending ones; `enabled: true` releases them. Either answers without waiting for the backlog.",
        params: IdParams,
        querystring: NoQuery,
        body: PatchBody,
        response: { 200: Slack, ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      const b = request.body;
      checkUrl(b.webhook_url);
      checkEvents(b.events);
      const updated = await db.transaction(async (tx) => {
        if (!(await getSlack(tx, orgId, id, true))) throw notFound("Slack destination");
        return updateSlack(tx, rt.box, orgId, id, {
          name: b.name,
          webhookUrl: b.webhook_url,
          events: b.events,
          enabled: b.enabled,
          rateLimitPerSecond: b.rate_limit_per_second,
        });
      });
      if (!updated) throw notFound("Slack destination");
      afterEnabledChange(rt, request.log, id, b.enabled);
      request.log.info({ webhook: id, fields: Object.keys(b) }, "Slack destination updated");
      return present(updated);
    },
  );

  app.delete(
    "/integrations/slack/:id",
    {
      schema: {
        ...common,
        summary: "Delete a Slack destination",
        description:
          "From this answer on it is gone for the API and nothing more is sent to it; its history is removed in the background.",
        params: IdParams,
        querystring: NoQuery,
        response: { 204: Type.Null({ description: "Deleted" }), ...errorResponses },
      },
    },
    async (request, reply) => {
      if (!(await deleteWebhook(db, adminOf(request).orgId, request.params.id, "slack"))) {
        throw notFound("Slack destination");
      }
      request.log.info({ webhook: request.params.id }, "Slack destination deleted");
      return reply.code(204).send(null);
    },
  );
};
