import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { and, eq, isNotNull, or, sql } from "drizzle-orm";
import { Type } from "typebox";
import { webhooks } from "../../db/schema.ts";
import { deliveryStats, STAT_WINDOWS } from "../../delivery/stats.ts";
import { notDeleted } from "../../destinations/store.ts";
import type { Runtime } from "../../runtime.ts";
import { adminOf } from "../auth.ts";
import { adminSecurity, errorResponses, iso, Nullable, StringEnum, Timestamp } from "../schemas.ts";

/** Most unhealthy destinations one answer lists. */
const MAX_LISTED = 100;

const Unhealthy = Type.Object({
  id: Type.String(),
  kind: StringEnum(["webhook", "slack", "email"] as const),
  name: Type.String({ description: "The destination's name, or its URL as the API shows it." }),
  failing_since: Nullable(Timestamp()),
  disabled_reason: Nullable(Type.String()),
});

/**
 * `GET /api/stats/deliveries?window=1h|24h`: the organization's own deliveries per minute by outcome, its
 * backlog and its unhealthy destinations. Nothing installation-wide (other tenants' queue depth) is in it.
 */
export const statsRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  app.get(
    "/stats/deliveries",
    {
      schema: {
        tags: ["stats"],
        summary: "The organization's deliveries per minute by outcome",
        description:
          "For the last hour or day, one point per minute (zeros included): the deliveries created in that minute, by how they stand now (`delivered`, `failed`, or `waiting`: pending or held). Also the organization's pending and held counts (each counted up to 1,000,000) and up to 100 destinations that are failing or disabled. Only this organization's deliveries are counted.",
        security: adminSecurity,
        querystring: Type.Object(
          {
            window: StringEnum(Object.keys(STAT_WINDOWS) as ["1h", "24h"], { description: "`1h` or `24h`." }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            window: StringEnum(["1h", "24h"] as const),
            bucket_seconds: Type.Integer({ description: "60: one point per minute." }),
            series: Type.Array(
              Type.Object({
                at: Timestamp("The minute's start."),
                delivered: Type.Integer(),
                failed: Type.Integer(),
                waiting: Type.Integer(),
              }),
            ),
            pending: Type.Integer(),
            held: Type.Integer(),
            failing: Type.Array(Unhealthy),
            disabled: Type.Array(Unhealthy),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const window = request.query.window;
      const [stats, unhealthy] = await Promise.all([
        deliveryStats(db, orgId, window),
        db
          .select({
            id: webhooks.id,
            kind: webhooks.kind,
            name: sql<string>`coalesce(${webhooks.name}, ${webhooks.url})`,
            enabled: webhooks.enabled,
            failingSince: webhooks.failingSince,
            disabledReason: webhooks.disabledReason,
          })
          .from(webhooks)
          .where(
            and(
              eq(webhooks.orgId, orgId),
              notDeleted,
              or(isNotNull(webhooks.failingSince), eq(webhooks.enabled, false)),
            ),
          )
          .orderBy(webhooks.createdAt)
          .limit(MAX_LISTED),
      ]);
      const shown = (d: (typeof unhealthy)[number]) => ({
        id: d.id,
        kind: d.kind,
        name: d.name,
        failing_since: iso(d.failingSince),
        disabled_reason: d.disabledReason,
      });
      return {
        window,
        bucket_seconds: 60,
        series: stats.series.map((p) => ({ ...p, at: iso(p.at) })),
        pending: stats.pending,
        held: stats.held,
        failing: unhealthy.filter((d) => d.enabled && d.failingSince).map(shown),
        disabled: unhealthy.filter((d) => !d.enabled).map(shown),
      };
    },
  );
};
