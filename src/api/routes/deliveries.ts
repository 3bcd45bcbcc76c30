import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { DestinationKind } from "../../db/schema.ts";
import {
  type DeliverySummary,
  deliveryIdByKey,
  deliveryStatus,
  getDelivery,
  listDeliveries,
} from "../../delivery/history.ts";
import { insertDeliveries, retryNow } from "../../delivery/outbox.ts";
import { queueDeliveries, releaseInBatches } from "../../delivery/queue.ts";
import { EVENT_TYPES } from "../../destinations/events.ts";
import { recoverFailed } from "../../destinations/health.ts";
import { shownRequestHeaders } from "../../destinations/shown-request.ts";
import { getSealedSigning } from "../../destinations/signing.ts";
import { getWebhook } from "../../destinations/store.ts";
import { testDelivery } from "../../destinations/test-events.ts";
import type { Runtime } from "../../runtime.ts";
import { audit } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { invalidField, notFound } from "../errors.ts";
import { Paged, pagedAnswer, pageOfQuery, pagingQuery } from "../paging.ts";
import {
  adminSecurity,
  EmptyBody,
  errorResponses,
  iso,
  NoQuery,
  Nullable,
  noBodyIsEmpty,
  PathId,
  StringEnum,
  Timestamp,
} from "../schemas.ts";

const STATUSES = ["pending", "held", "delivered", "failed"] as const;

/** Failed deliveries one `recover` statement queues again. */
const RECOVER_BATCH = 1000;

const HistoryQuery = Type.Object(
  {
    from: Type.Optional(Timestamp("Only deliveries created at or after this time (ISO 8601).")),
    to: Type.Optional(Timestamp("Only deliveries created before this time (ISO 8601).")),
    status: Type.Optional(StringEnum(STATUSES)),
    ...pagingQuery(20),
  },
  { additionalProperties: false },
);

const Summary = Type.Object({
  id: Type.String({ description: "`del_…`" }),
  event: Type.String(),
  status: StringEnum(STATUSES),
  attempt_count: Type.Integer(),
  http_status: Nullable(Type.Integer(), { description: "Status code of the last attempt." }),
  last_error: Nullable(Type.String(), {
    description:
      "Why the last attempt failed (`kind: message` for no answer, e.g. `timeout: …`; null when a status arrived or after a success).",
  }),
  held_reason: Nullable(StringEnum(["destination_disabled", "secret_unreadable"] as const), {
    description:
      "Why a `held` delivery waits: its destination is disabled, or a stored secret does not open with the configured SECRETS_KEY (it goes out by itself once the right key is configured). Null unless held.",
  }),
  created_at: Timestamp(),
  delivered_at: Nullable(Timestamp()),
  next_attempt_at: Nullable(Timestamp(), { description: "Set while the delivery is pending." }),
  idempotency_key: Type.String(),
  digest_id: Nullable(Type.String(), {
    description:
      "Slack and email: the digest delivery (`del_…`, event `escalation.digest`) that carried this alert in a storm; its payload lists every alert it carried. Null otherwise.",
  }),
});

const Attempt = Type.Object({
  attempt_number: Type.Integer(),
  started_at: Timestamp(),
  duration_ms: Type.Integer(),
  http_status: Nullable(Type.Integer()),
  error_kind: Nullable(
    Type.String({
      description: "timeout, dns, refused, reset, tls, blocked or network; null when a status arrived.",
    }),
  ),
  error_message: Nullable(Type.String()),
  response_excerpt: Nullable(
    Type.String({ description: "First 2 KB of the response body, secrets masked." }),
  ),
});

const Detail = Type.Object({
  ...Summary.properties,
  payload: Type.Unknown({ description: "The exact request body, parsed back to JSON." }),
  request: Nullable(
    Type.Object({
      method: Type.Literal("POST"),
      url: Type.String(),
      headers: Type.Record(Type.String(), Type.String(), {
        description:
          "The headers it is sent with: the credential masked; the signature for the last attempt's timestamp (or now, before any) with the destination's signing secrets as they are now, shown to admin keys only.",
      }),
      signed_at: Timestamp("The time the shown signature is for."),
    }),
    { description: "The request as a webhook destination sends it; null for Slack and email." },
  ),
  attempts: Type.Array(Attempt),
});

const TestBody = Type.Object(
  {
    event: StringEnum(EVENT_TYPES, {
      description:
        "The event type to send a sample of. Allowed even when the destination does not subscribe to it: a test is an explicit admin action.",
    }),
  },
  { additionalProperties: false },
);

/** What the routes say of each kind of destination: its path under `/api/integrations`, its name, its id prefix. */
export const KINDS: Record<DestinationKind, { base: string; noun: string; prefix: string }> = {
  webhook: { base: "webhooks", noun: "webhook destination", prefix: "whe" },
  slack: { base: "slack", noun: "Slack destination", prefix: "slk" },
  email: { base: "email", noun: "email destination", prefix: "eml" },
};

function paramsOf(kind: DestinationKind) {
  const id = PathId(`${KINDS[kind].noun} id (\`${KINDS[kind].prefix}_…\`)`);
  return {
    WebhookParams: Type.Object({ id }, { additionalProperties: false }),
    DeliveryParams: Type.Object(
      { id, delivery_id: PathId("Delivery id (`del_…`)") },
      { additionalProperties: false },
    ),
  };
}

function heldReason(d: DeliverySummary): "destination_disabled" | "secret_unreadable" | null {
  if (d.status !== "held") return null;
  return d.holdReason ?? "destination_disabled";
}

function presentSummary(d: DeliverySummary) {
  return {
    id: d.id,
    event: d.eventType,
    status: d.status,
    attempt_count: d.attemptCount,
    http_status: d.lastHttpStatus,
    last_error: d.lastError,
    held_reason: heldReason(d),
    created_at: iso(d.createdAt),
    delivered_at: iso(d.deliveredAt),
    next_attempt_at: iso(d.nextAttemptAt),
    idempotency_key: d.idempotencyKey,
    digest_id: d.digestId,
  };
}

function parsePayload(payload: string): unknown {
  try {
    return JSON.parse(payload);
  } catch {
    return payload;
  }
}

/**
 * Delivery history, detail, manual retry, recover and test events of one destination (seed 002): the same
 * routes for every kind, registered once per kind under its own path.
 */
export const deliveryRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime; kind: DestinationKind }> = async (
  app,
  { rt, kind },
) => {
  const db = rt.database.db;
  const tags = ["deliveries"];
  const security = adminSecurity;
  const { base, noun } = KINDS[kind];
  const { WebhookParams, DeliveryParams } = paramsOf(kind);
  const maxAttempts = rt.config.retrySchedule.length + 1;

  const webhookOf = async (orgId: string, id: string) => {
    const webhook = await getWebhook(db, orgId, id, { kind });
    if (!webhook) throw notFound(noun);
    return webhook;
  };

  app.get(
    `/integrations/${base}/:id/deliveries`,
    {
      schema: {
        tags,
        security,
        summary: "List a destination's deliveries",
        description:
          "Newest first. `from` is inclusive, `to` exclusive, both on the delivery's creation time.",
        params: WebhookParams,
        querystring: HistoryQuery,
        response: {
          200: Paged(Summary),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const q = request.query;
      const from = q.from === undefined ? undefined : new Date(q.from);
      const to = q.to === undefined ? undefined : new Date(q.to);
      if (from && to && to <= from) throw invalidField("query.to", "must be later than query.from");
      const pageOf = pageOfQuery(q, "del");
      const perPage = q.per_page ?? 20;
      const webhook = await webhookOf(orgId, request.params.id);
      const result = await listDeliveries(
        db,
        orgId,
        webhook.id,
        { from, to, status: q.status },
        pageOf,
        perPage,
      );
      return pagedAnswer(result, q, perPage, presentSummary);
    },
  );

  app.get(
    `/integrations/${base}/:id/deliveries/:delivery_id`,
    {
      schema: {
        tags,
        security,
        summary: "Get a delivery with its payload and attempts",
        params: DeliveryParams,
        querystring: NoQuery,
        response: { 200: Detail, ...errorResponses },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const webhook = await webhookOf(orgId, request.params.id);
      const d = await getDelivery(db, orgId, webhook.id, request.params.delivery_id);
      if (!d) throw notFound("delivery");
      const sealed = kind === "webhook" ? await getSealedSigning(db, orgId, webhook.id) : undefined;
      const signedAt = d.attempts.at(-1)?.startedAt ?? new Date();
      return {
        ...presentSummary(d),
        payload: parsePayload(d.payload),
        request: sealed
          ? {
              method: "POST" as const,
              url: webhook.url,
              headers: shownRequestHeaders(
                rt.box,
                webhook.id,
                d,
                sealed,
                signedAt,
                adminOf(request).scope === "admin",
              ),
              signed_at: iso(signedAt),
            }
          : null,
        attempts: d.attempts.map((a) => ({
          attempt_number: a.attemptNumber,
          started_at: iso(a.startedAt),
          duration_ms: a.durationMs,
          http_status: a.httpStatus,
          error_kind: a.errorKind,
          error_message: a.errorMessage,
          response_excerpt: a.responseExcerpt,
        })),
      };
    },
  );

  app.post(
    `/integrations/${base}/:id/deliveries/:delivery_id/retry`,
    {
      preValidation: noBodyIsEmpty,
      schema: {
        tags,
        security,
        summary: "Retry a delivery now",
        description:
          "One more attempt at once, whatever the status (delivered ones too), with the same body and idempotency key. A delivery of a disabled destination stays `held` until it is enabled.",
        params: DeliveryParams,
        querystring: NoQuery,
        body: EmptyBody,
        response: {
          202: Type.Object({ id: Type.String(), status: StringEnum(STATUSES) }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const webhook = await webhookOf(orgId, request.params.id);
      const { ref, status } = await db.transaction(async (tx) => {
        const before = await deliveryStatus(tx, webhook.id, request.params.delivery_id);
        const retried = before && (await retryNow(tx, webhook.id, request.params.delivery_id));
        if (!retried) throw notFound("delivery");
        const now = (await deliveryStatus(tx, webhook.id, retried.id)) ?? "pending";
        await audit(tx, request, {
          action: "delivery.retried",
          targetType: "delivery",
          targetId: retried.id,
          before: { destination_id: webhook.id, status: before },
          after: { destination_id: webhook.id, status: now },
        });
        return { ref: retried, status: now };
      });
      if (status === "pending") await queueDeliveries(rt.deliveryQueue, [ref]);
      request.log.info({ webhook: webhook.id, delivery: ref.id, status }, "delivery retry requested");
      return reply.code(202).send({ id: ref.id, status });
    },
  );

  app.post(
    `/integrations/${base}/:id/recover`,
    {
      schema: {
        tags,
        security,
        summary: "Queue again the failed deliveries of a time window",
        description:
          "Every delivery of this destination that ended `failed` and was created in [since, until] is queued again at once with a fresh retry schedule, same body and idempotency key. For after an outage of the receiver.",
        params: WebhookParams,
        querystring: NoQuery,
        body: Type.Object(
          {
            since: Type.String({ format: "date-time", description: "Start of the window (inclusive)." }),
            until: Type.Optional(
              Type.String({
                format: "date-time",
                description: "End of the window (inclusive); default now.",
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          202: Type.Object({
            queued: Type.Integer({ description: "Queued before this answer (at most 1,000)." }),
            more: Type.Boolean({
              description: "True when the window holds more: they are queued right after, a batch at a time.",
            }),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { orgId } = adminOf(request);
      const webhook = await webhookOf(orgId, request.params.id);
      const since = new Date(request.body.since);
      const until = request.body.until ? new Date(request.body.until) : new Date();
      if (until < since) throw invalidField("body.until", "must not be before body.since");
      const attempts = rt.config.retrySchedule.length + 1;
      const batch = (after?: string) =>
        recoverFailed(db, orgId, webhook.id, since, until, attempts, RECOVER_BATCH, after);
      // One batch before answering, so a small window is queued by then; a large one goes on after the
      // answer, a bounded statement at a time. Should that be cut short, what is left is still `failed`
      // and the same request recovers it.
      const refs = await db.transaction(async (tx) => {
        const first = await recoverFailed(tx, orgId, webhook.id, since, until, attempts, RECOVER_BATCH);
        await audit(tx, request, {
          action: `${kind}.recovered`,
          targetType: kind,
          targetId: webhook.id,
          before: null,
          after: { since: since.toISOString(), until: until.toISOString(), queued_first: first.length },
        });
        return first;
      });
      await queueDeliveries(rt.deliveryQueue, refs);
      const more = refs.length === RECOVER_BATCH;
      if (more) {
        releaseInBatches(rt.deliveryQueue, batch, RECOVER_BATCH).then(
          (n) =>
            request.log.info({ webhook: webhook.id, queued: n + refs.length }, "failed deliveries recovered"),
          (err: unknown) => request.log.warn({ err, webhook: webhook.id }, "recover cut short; run it again"),
        );
      }
      request.log.info(
        { webhook: webhook.id, queued: refs.length, more },
        "failed deliveries recovery started",
      );
      return reply.code(202).send({ queued: refs.length, more });
    },
  );

  app.post(
    `/integrations/${base}/:id/test`,
    {
      schema: {
        tags,
        security,
        summary: "Send a test event",
        description:
          'Sends a sample payload with `"test": true` through the normal pipeline, so it shows in the delivery history. `escalation.alert` sends a sample alert body with fresh `aut_`/`rec_` ids; other events send their envelope with `test: true` in `data`. Allowed even when the destination does not subscribe to the event type. A disabled destination gets the delivery `held`.',
        params: WebhookParams,
        querystring: NoQuery,
        body: TestBody,
        response: {
          202: Type.Object({
            delivery_id: Type.String({ description: "`del_…`" }),
            status: StringEnum(["pending", "held"]),
          }),
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const admin = adminOf(request);
      const webhook = await webhookOf(admin.orgId, request.params.id);
      const item = testDelivery(request.body.event, {
        orgId: admin.orgId,
        orgSlug: admin.orgSlug,
        webhookId: webhook.id,
        webhookUrl: webhook.url,
        publicUrl: rt.config.publicUrl,
      });
      // The row and its audit event commit together; the job is queued after (the sweeper queues it should
      // this process die in between).
      const { result, deliveryId } = await db.transaction(async (tx) => {
        const inserted = await insertDeliveries(tx, [item], maxAttempts);
        const id = inserted.pending[0]?.id ?? (await deliveryIdByKey(tx, webhook.id, item.idempotencyKey));
        // No row: the destination was deleted between the lookup and the insert.
        if (id === undefined) throw notFound(noun);
        await audit(tx, request, {
          action: `${kind}.test_sent`,
          targetType: kind,
          targetId: webhook.id,
          before: null,
          after: { event: item.eventType, delivery_id: id },
        });
        return { result: inserted, deliveryId: id };
      });
      await queueDeliveries(rt.deliveryQueue, result.pending);
      request.log.info(
        { webhook: webhook.id, delivery: deliveryId, event: item.eventType },
        "test event queued",
      );
      return reply
        .code(202)
        .send({ delivery_id: deliveryId, status: result.pending.length > 0 ? "pending" : "held" });
    },
  );
};
