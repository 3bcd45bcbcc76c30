import type { FastifyPluginAsync } from "fastify";
import { type Static, type TObject, Type } from "typebox";
import type { PageOf } from "../../db/paging.ts";
import { DEFAULT_DIGEST_AFTER } from "../../delivery/digest.ts";
import { heldCounts } from "../../delivery/history.ts";
import {
  createDestination,
  type DestinationInput,
  type DestinationView,
  getDestination,
  listDestinations,
  type OtherKind,
  updateDestination,
} from "../../destinations/others.ts";
import { deleteWebhook } from "../../destinations/store.ts";
import type { Runtime } from "../../runtime.ts";
import { auditTarget } from "../audit.ts";
import { adminOf } from "../auth.ts";
import { Health, healthReader } from "../destination-health.ts";
import { notFound } from "../errors.ts";
import { answerList, ListQuery, Paged } from "../paging.ts";
import { adminSecurity, errorResponses, iso, NoQuery, Nullable, PathId, Timestamp } from "../schemas.ts";
import { KINDS } from "./deliveries.ts";
import { afterEnabledChange, checkEvents, Events, Held } from "./webhooks.ts";

/** An admin's label for a destination. */
export const DestinationName = Nullable(Type.String({ minLength: 1, maxLength: 100 }));

/** `rate_limit_per_second` of a kind whose default is `byDefault` (words). */
export function RateInput(byDefault: string) {
  return Type.Optional(
    Nullable(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1000,
        description: `Most messages per second, across all workers (fractional allowed); waiting for it spends no attempt. Null or absent: ${byDefault}.`,
      }),
    ),
  );
}

/** The options of every kind's PATCH body. */
export const PATCH_BODY_OPTIONS = {
  additionalProperties: false,
  description: "Every field is optional; the ones given replace the stored ones.",
} as const;

/** `digest_after` of Slack and email destinations. */
export const DigestAfter = Type.Optional(
  Nullable(
    Type.Integer({
      minimum: 1,
      maximum: 1000,
      description:
        "When more alerts than this wait for the destination, they go out as one digest (listing up to 20, counting the rest). Null or absent: 10.",
    }),
  ),
);

/** The body fields every kind other than webhooks shares, for its create and its PATCH body. */
export function sharedBodyFields(rate: ReturnType<typeof RateInput>) {
  return {
    create: {
      events: Events,
      enabled: Type.Optional(Type.Boolean({ default: true })),
      rate_limit_per_second: rate,
      digest_after: DigestAfter,
    },
    patch: {
      events: Type.Optional(Events),
      enabled: Type.Optional(Type.Boolean()),
      rate_limit_per_second: rate,
      digest_after: DigestAfter,
    },
  };
}

/** The answer fields every kind other than webhooks shares, after its own. */
export const SharedViewFields = {
  events: Type.Array(Type.String()),
  enabled: Type.Boolean(),
  rate_limit_per_second: Type.Number({ description: "The rate the destination is held to." }),
  digest_after: Type.Integer({ description: "More alerts than this waiting go out as one digest." }),
  disabled_reason: Nullable(Type.String()),
  created_at: Timestamp(),
  updated_at: Timestamp(),
};

/** {@link SharedViewFields} of one destination; `defaultRate` is its kind's rate when it sets none. */
export function presentShared(d: DestinationView, defaultRate: number) {
  return {
    events: d.events,
    enabled: d.enabled,
    rate_limit_per_second: d.rateLimitPerSecond ?? defaultRate,
    digest_after: d.digestAfter ?? DEFAULT_DIGEST_AFTER,
    disabled_reason: d.disabledReason,
    created_at: iso(d.createdAt) as string,
    updated_at: iso(d.updatedAt) as string,
  };
}

interface SharedBody {
  name?: string | null;
  events?: string[];
  enabled?: boolean;
  rate_limit_per_second?: number | null;
  digest_after?: number | null;
}

/** What a create request's shared fields store (absent ones take their defaults). */
export function sharedInput(b: SharedBody & { events: string[] }) {
  return {
    name: b.name ?? null,
    events: b.events,
    enabled: b.enabled ?? true,
    rateLimitPerSecond: b.rate_limit_per_second ?? null,
    digestAfter: b.digest_after ?? null,
  };
}

/** What a PATCH's shared fields change (absent ones stay). */
export function sharedChanges(b: SharedBody) {
  return {
    name: b.name,
    events: b.events,
    enabled: b.enabled,
    rateLimitPerSecond: b.rate_limit_per_second,
    digestAfter: b.digest_after,
  };
}

/**
 * What one kind of destination other than webhooks (Slack, email) says about itself; {@link destinationRoutes}
 * makes its `GET`/`POST` `/api/integrations/<base>` and `GET`/`PATCH`/`DELETE` `…/:id` of it.
 */
export interface DestinationSpec<C extends TObject, P extends TObject, V extends TObject> {
  kind: OtherKind;
  CreateBody: C;
  PatchBody: P;
  View: V;
  present(d: DestinationView): Static<V>;
  /** Checks a create request (beyond its schema) and says what to store; throws a 400 naming the field. */
  toInput(rt: Runtime, body: Static<C>): DestinationInput;
  /** The same for a PATCH; `current` is the stored destination. */
  toChanges(rt: Runtime, body: Static<P>, current: DestinationView): Partial<DestinationInput>;
}

export function destinationRoutes<C extends TObject, P extends TObject, V extends TObject>(
  spec: DestinationSpec<C, P, V>,
): FastifyPluginAsync<{ rt: Runtime }> {
  // Plain Fastify typing: the schemas still validate every request, and the spec's types say what passed.
  return async (app, { rt }) => {
    type Req = { params: { id: string }; query: Record<string, unknown>; body: unknown };
    const db = rt.database.db;
    const { kind } = spec;
    const { base, noun, prefix } = KINDS[kind];
    const Noun = noun[0]?.toUpperCase() + noun.slice(1);
    const common = { tags: [base], security: adminSecurity };
    const IdParams = Type.Object(
      { id: PathId(`${Noun} id (\`${prefix}_…\`)`) },
      { additionalProperties: false },
    );
    const WithHeld = Type.Object({ ...spec.View.properties, health: Health, held: Held });
    const Listed = Type.Object({ ...spec.View.properties, health: Health });
    const readHealth = healthReader(rt);
    const present = (d: DestinationView) => spec.present(d);
    const auditDestination = auditTarget(kind);

    app.get(
      `/integrations/${base}`,
      {
        schema: {
          ...common,
          summary: `List ${noun}s`,
          description: "Oldest first.",
          querystring: ListQuery,
          response: { 200: Paged(Listed), ...errorResponses },
        },
      },
      async (request) => {
        const { orgId } = adminOf(request);
        const withHealth = async (p: PageOf, n: number) => {
          const page = await listDestinations(db, orgId, kind, p, n);
          const health = await readHealth(page.rows);
          return { ...page, rows: page.rows.map((d) => ({ ...present(d), health: health.get(d.id) })) };
        };
        return answerList((request as Req).query, prefix as "slk", withHealth, (v) => v);
      },
    );

    app.post(
      `/integrations/${base}`,
      {
        schema: {
          ...common,
          summary: `Create a ${noun}`,
          querystring: NoQuery,
          body: spec.CreateBody,
          response: { 201: spec.View, ...errorResponses },
        },
      },
      async (request, reply) => {
        const body = (request as Req).body as Static<C>;
        checkEvents((body as { events?: string[] }).events);
        const input = spec.toInput(rt, body);
        const created = await db.transaction(async (tx) => {
          const made = await createDestination(tx, rt.box, adminOf(request).orgId, kind, input);
          await auditDestination(tx, request, "created", made.id, null, present(made));
          return made;
        });
        request.log.info({ webhook: created.id }, `${noun} created`);
        return reply.code(201).send(present(created));
      },
    );

    app.get(
      `/integrations/${base}/:id`,
      {
        schema: {
          ...common,
          summary: `Get a ${noun}`,
          params: IdParams,
          querystring: NoQuery,
          response: { 200: WithHeld, ...errorResponses },
        },
      },
      async (request) => {
        const found = await getDestination(db, adminOf(request).orgId, kind, (request as Req).params.id);
        if (!found) throw notFound(noun);
        const [held, health] = await Promise.all([
          heldCounts(db, found.id, rt.config.deliveryRetentionMs),
          readHealth([found]),
        ]);
        return {
          ...present(found),
          health: health.get(found.id),
          held: { total: held.total, past_retention: held.pastRetention, estimated: held.estimated },
        };
      },
    );

    app.patch(
      `/integrations/${base}/:id`,
      {
        schema: {
          ...common,
          summary: `Update a ${noun}`,
          description:
            "Every field is optional; the ones given replace the stored ones. `enabled: false` stops deliveries at once and holds the pending ones; `enabled: true` releases them. Either answers without waiting for the backlog.",
          params: IdParams,
          querystring: NoQuery,
          body: spec.PatchBody,
          response: { 200: spec.View, ...errorResponses },
        },
      },
      async (request) => {
        const { orgId } = adminOf(request);
        const { id } = (request as Req).params;
        const body = (request as Req).body as Static<P>;
        checkEvents((body as { events?: string[] }).events);
        const updated = await db.transaction(async (tx) => {
          const current = await getDestination(tx, orgId, kind, id, true);
          if (!current) throw notFound(noun);
          const after = await updateDestination(
            tx,
            rt.box,
            orgId,
            kind,
            id,
            spec.toChanges(rt, body, current),
          );
          // A new Slack URL is a change although both views show it masked.
          const secret =
            (body as { webhook_url?: string }).webhook_url !== undefined
              ? { webhook_url_replaced: true }
              : {};
          if (after)
            await auditDestination(tx, request, "updated", id, present(current), {
              ...present(after),
              ...secret,
            });
          return after;
        });
        if (!updated) throw notFound(noun);
        afterEnabledChange(rt, request.log, id, (body as { enabled?: boolean }).enabled);
        request.log.info({ webhook: id, fields: Object.keys(body) }, `${noun} updated`);
        return present(updated);
      },
    );

    app.delete(
      `/integrations/${base}/:id`,
      {
        schema: {
          ...common,
          summary: `Delete a ${noun}`,
          description:
            "From this answer on it is gone for the API and nothing more is sent to it; its history is removed in the background.",
          params: IdParams,
          querystring: NoQuery,
          response: { 204: Type.Null({ description: "Deleted" }), ...errorResponses },
        },
      },
      async (request, reply) => {
        const { id } = (request as Req).params;
        const { orgId } = adminOf(request);
        await db.transaction(async (tx) => {
          const before = await getDestination(tx, orgId, kind, id, true);
          if (!before || !(await deleteWebhook(tx, orgId, id, kind))) throw notFound(noun);
          await auditDestination(tx, request, "deleted", id, present(before), null);
        });
        request.log.info({ webhook: id }, `${noun} deleted`);
        return reply.code(204).send(null);
      },
    );
  };
}
