import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import {
  type AutomationFilter,
  type AutomationView,
  createAutomation,
  deleteAutomation,
  getAutomation,
  lastFiredAt,
  listAutomations,
  type MetadataCondition,
  unknownIntegrationIds,
  unknownWebhookIds,
  updateAutomation,
} from "../../automations/store.ts";
import type { Executor } from "../../db/client.ts";
import type { PageOf } from "../../db/paging.ts";
import type { Runtime } from "../../runtime.ts";
import { auditTarget } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { invalidField, missingField, notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import {
  adminSecurity,
  errorResponses,
  iso,
  NoQuery,
  Nullable,
  PathId,
  StringEnum,
  Timestamp,
} from "../schemas.ts";

const LEVELS = ["low", "medium", "high", "extreme"] as const;
const RECORD_TYPES = [
  "REVIEW",
  "SURVEY",
  "CONVERSATION",
  "FORUM_CONVERSATION_THREAD",
  "AUDIO_RECORDING",
] as const;
const OPS = ["eq", "neq", "in", "exists", "gt", "gte", "lt", "lte"] as const;

const Scalar = Type.Union([Type.String({ maxLength: 1000 }), Type.Number(), Type.Boolean()]);

const Condition = Type.Object(
  {
    field: Type.String({ minLength: 1, maxLength: 200, description: "A metadata field of the record." }),
    op: StringEnum(OPS),
    value: Type.Optional(
      Type.Union(
        [
          Type.String({ maxLength: 1000 }),
          Type.Number(),
          Type.Boolean(),
          Type.Array(Scalar, { maxItems: 100 }),
        ],
        {
          "x-message": "must be a string, number, boolean or a list of them",
          description:
            "`in`: a non-empty list; `gt`/`gte`/`lt`/`lte`: a number; `eq`/`neq`: a string, number or boolean; `exists`: none.",
        },
      ),
    ),
  },
  { additionalProperties: false },
);

const Id = (description: string) => Type.String({ minLength: 1, maxLength: 64, description });

const Filter = Type.Object(
  {
    integration_ids: Type.Optional(
      Type.Array(Id("Feedback integration id (`fbi_…`)"), { minItems: 1, maxItems: 100, uniqueItems: true }),
    ),
    types: Type.Optional(Type.Array(StringEnum(RECORD_TYPES), { minItems: 1, uniqueItems: true })),
    metadata: Type.Optional(
      Type.Array(Condition, {
        maxItems: 50,
        description: "All conditions must hold; a list-valued field matches when any of its values does.",
      }),
    ),
  },
  {
    additionalProperties: false,
    description: "Which records the automation looks at; a missing part matches all.",
  },
);

const Trigger = Type.Object(
  {
    min_escalation_level: StringEnum(LEVELS),
    min_emotional_intensity_level: Type.Optional(StringEnum(LEVELS)),
    require_sentiment_degraded: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, description: "When a matching record fires the automation." },
);

const Name = Type.String({ minLength: 1, maxLength: 200, pattern: "\\S", "x-message": "must not be blank" });
const WebhookIds = Type.Array(Id("Webhook destination id (`whe_…`)"), {
  maxItems: 100,
  uniqueItems: true,
  description:
    "Webhook destinations the alerts go to; each must be one of the organization's. Kept for webhooks: `destination_ids` takes every kind.",
});
const DestinationIds = Type.Array(Id("Destination id of any kind (`whe_…`, `slk_…`)"), {
  maxItems: 100,
  uniqueItems: true,
  description: "Destinations of any kind the alerts go to; each must be one of the organization's.",
});

const CreateBody = Type.Object(
  {
    name: Name,
    active: Type.Optional(Type.Boolean({ default: true })),
    filter: Type.Optional(Filter),
    trigger: Trigger,
    destination_ids: Type.Optional(DestinationIds),
    webhook_ids: Type.Optional(WebhookIds),
  },
  { additionalProperties: false, description: "`destination_ids` or `webhook_ids` (not both) is required." },
);

const PatchBody = Type.Object(
  {
    name: Type.Optional(Name),
    active: Type.Optional(Type.Boolean()),
    filter: Type.Optional(Filter),
    trigger: Type.Optional(Trigger),
    destination_ids: Type.Optional(DestinationIds),
    webhook_ids: Type.Optional(WebhookIds),
  },
  {
    additionalProperties: false,
    description:
      "Every field is optional; `filter`, `trigger` and `destination_ids` replace the stored ones whole. `webhook_ids` replaces the webhook destinations only and keeps the others.",
  },
);

const Automation = Type.Object({
  id: Type.String({ description: "`aut_…`" }),
  name: Type.String(),
  active: Type.Boolean(),
  filter: Filter,
  trigger: Trigger,
  destination_ids: Type.Array(Type.String(), {
    description: "Every destination, of any kind; sorted by id.",
  }),
  webhook_ids: Type.Array(Type.String(), { description: "The webhook destinations only; sorted by id." }),
  created_at: Timestamp(),
  updated_at: Timestamp(),
});

const IdParams = Type.Object({ id: PathId("Automation id (`aut_…`)") }, { additionalProperties: false });

/** An automation as lists and `GET` show it: with when it last fired. */
const ShownAutomation = Type.Object({
  ...Automation.properties,
  last_fired_at: Nullable(
    Timestamp(
      "When a record last met its conditions (whether or not that alert already existed); null if never.",
    ),
  ),
});

function present(a: AutomationView) {
  return {
    id: a.id,
    name: a.name,
    active: a.active,
    filter: a.filter,
    trigger: a.trigger,
    destination_ids: a.webhookIds,
    webhook_ids: a.webhookIds.filter(isWebhookId),
    created_at: iso(a.createdAt),
    updated_at: iso(a.updatedAt),
  };
}

/** The rules between `op` and `value` that a schema cannot say with a message naming the field. */
function checkConditions(conditions: MetadataCondition[] | undefined): void {
  conditions?.forEach((c, i) => {
    const path = `body.filter.metadata[${i}].value`;
    const v = c.value;
    switch (c.op) {
      case "exists":
        if (v !== undefined) throw invalidField(path, "not allowed when op is exists");
        return;
      case "in":
        if (v === undefined) throw missingField(path, "required when op is in");
        if (!Array.isArray(v) || v.length === 0)
          throw invalidField(path, "must be a non-empty list when op is in");
        return;
      case "gt":
      case "gte":
      case "lt":
      case "lte":
        if (v === undefined) throw missingField(path, `required when op is ${c.op}`);
        if (typeof v !== "number") throw invalidField(path, `must be a number when op is ${c.op}`);
        return;
      case "eq":
      case "neq":
        if (v === undefined) throw missingField(path, `required when op is ${c.op}`);
        if (Array.isArray(v))
          throw invalidField(path, `must be a string, number or boolean when op is ${c.op}`);
        return;
    }
  });
}

/** Ids carry their type: a webhook destination's start with `whe_`. */
const isWebhookId = (id: string) => id.startsWith("whe_");

interface Destinations {
  destination_ids?: string[];
  webhook_ids?: string[];
}

/** `destination_ids` and `webhook_ids` name the same links two ways, so one request gives one of them. */
function checkDestinationFields(body: Destinations): void {
  if (body.destination_ids !== undefined && body.webhook_ids !== undefined) {
    throw invalidField("body.destination_ids", "cannot be combined with body.webhook_ids");
  }
}

/**
 * Every referenced id must belong to the caller's organization (and `webhook_ids` be webhook destinations);
 * the first one that does not is named.
 */
async function checkReferences(
  tx: Executor,
  orgId: string,
  filter: AutomationFilter | undefined,
  destinations: Destinations,
): Promise<void> {
  for (const [field, ids, noun] of [
    ["destination_ids", destinations.destination_ids, "destination"],
    ["webhook_ids", destinations.webhook_ids, "webhook destination"],
  ] as const) {
    const wrongKind = (ids ?? []).findIndex((id) => field === "webhook_ids" && !isWebhookId(id));
    const [bad] = wrongKind >= 0 ? [wrongKind] : await unknownWebhookIds(tx, orgId, ids ?? []);
    if (bad !== undefined) throw invalidField(`body.${field}[${bad}]`, `no ${noun} with this id`);
  }
  const [badIntegration] = await unknownIntegrationIds(tx, orgId, filter?.integration_ids ?? []);
  if (badIntegration !== undefined) {
    throw invalidField(
      `body.filter.integration_ids[${badIntegration}]`,
      "no feedback integration with this id",
    );
  }
}

/** `/api/automations`: what fires alerts, and to which destinations. */
const auditAutomation = auditTarget("automation");

export const automationRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  const tags = ["automations"];
  const security = adminSecurity;

  app.get(
    "/automations",
    {
      schema: {
        tags,
        security,
        summary: "List automations",
        description: "Oldest first.",
        querystring: ListQuery,
        response: { 200: Paged(ShownAutomation), ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const withLastFired = async (p: PageOf, n: number) => {
        const page = await listAutomations(db, orgId, p, n);
        const fired = await lastFiredAt(
          db,
          page.rows.map((a) => a.id),
        );
        return {
          ...page,
          rows: page.rows.map((a) => ({ ...present(a), last_fired_at: iso(fired.get(a.id) ?? null) })),
        };
      };
      return answerList(request.query, "aut", withLastFired, (v) => v);
    },
  );

  app.post(
    "/automations",
    {
      schema: {
        tags,
        security,
        summary: "Create an automation",
        querystring: NoQuery,
        body: CreateBody,
        response: { 201: ShownAutomation, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const body = request.body;
      checkConditions(body.filter?.metadata);
      checkDestinationFields(body);
      const destinationIds = body.destination_ids ?? body.webhook_ids;
      if (destinationIds === undefined) throw missingField("body.destination_ids");
      const created = await db.transaction(async (tx) => {
        await checkReferences(tx, orgId, body.filter, body);
        const made = await createAutomation(tx, orgId, {
          name: body.name,
          active: body.active ?? true,
          filter: body.filter ?? {},
          trigger: body.trigger,
          webhookIds: destinationIds,
        });
        await auditAutomation(tx, request, "created", made.id, null, present(made));
        return made;
      });
      request.log.info({ automation: created.id }, "automation created");
      return reply.code(201).send({ ...present(created), last_fired_at: null });
    },
  );

  app.get(
    "/automations/:id",
    {
      schema: {
        tags,
        security,
        summary: "Get an automation",
        params: IdParams,
        querystring: NoQuery,
        response: { 200: ShownAutomation, ...errorResponses },
      },
    },
    async (request) => {
      const a = await getAutomation(db, adminOf(request).orgId, request.params.id);
      if (!a) throw notFound("automation");
      const fired = await lastFiredAt(db, [a.id]);
      return { ...present(a), last_fired_at: iso(fired.get(a.id) ?? null) };
    },
  );

  app.patch(
    "/automations/:id",
    {
      schema: {
        tags,
        security,
        summary: "Update an automation",
        params: IdParams,
        querystring: NoQuery,
        body: PatchBody,
        response: { 200: ShownAutomation, ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      const body = request.body;
      checkConditions(body.filter?.metadata);
      checkDestinationFields(body);
      const updated = await db.transaction(async (tx) => {
        const current = await getAutomation(tx, orgId, id, { forUpdate: true });
        if (!current) throw notFound("automation");
        await checkReferences(tx, orgId, body.filter, body);
        const others = current.webhookIds.filter((w) => !isWebhookId(w));
        const after = await updateAutomation(tx, orgId, id, {
          name: body.name,
          active: body.active,
          filter: body.filter,
          trigger: body.trigger,
          webhookIds: body.destination_ids ?? (body.webhook_ids && [...others, ...body.webhook_ids]),
        });
        if (after) await auditAutomation(tx, request, "updated", id, present(current), present(after));
        return after;
      });
      if (!updated) throw notFound("automation");
      request.log.info({ automation: id, fields: Object.keys(body) }, "automation updated");
      const fired = await lastFiredAt(db, [updated.id]);
      return { ...present(updated), last_fired_at: iso(fired.get(updated.id) ?? null) };
    },
  );

  app.delete(
    "/automations/:id",
    {
      schema: {
        tags,
        security,
        summary: "Delete an automation",
        description: "Deliveries it already created stay in their destinations' history.",
        params: IdParams,
        querystring: NoQuery,
        response: { 204: Type.Null({ description: "Deleted" }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const { id } = request.params;
      await db.transaction(async (tx) => {
        const before = await getAutomation(tx, orgId, id, { forUpdate: true });
        if (!before || !(await deleteAutomation(tx, orgId, id))) throw notFound("automation");
        await auditAutomation(tx, request, "deleted", id, present(before), null);
      });
      request.log.info({ automation: request.params.id }, "automation deleted");
      return reply.code(204).send(null);
    },
  );
};
