import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { and, eq, isNotNull, sql } from "drizzle-orm";
import { type Static, Type } from "typebox";
import { webhooks } from "../../db/schema.ts";
import { deliveryStats, STAT_WINDOWS } from "../../delivery/stats.ts";
import { notDeleted } from "../../destinations/store.ts";
import type { Runtime } from "../../runtime.ts";
import { adminOf } from "../auth.ts";
import { adminSecurity, errorResponses, iso, Nullable, StringEnum, Timestamp } from "../schemas.ts";

/** Most destinations one answer lists as failing, and as disabled. */
const MAX_LISTED = 100;
/**
 * How long one organization's answer is reused, in ms: the series walks every delivery of the window, so a
 * busy tenant clicking through the overview re-reads a day at most this often per API process. An hour is
 * a 24th of that and is read fresh.
 */
const CACHE_MS = { "1h": 0, "24h": 30_000 } as const;
/** Answers kept at once; the oldest goes first. */
const CACHE_ENTRIES = 1000;

const Unhealthy = Type.Object({
  id: Type.String(),
  kind: StringEnum(["webhook", "slack", "email"] as const),
  name: Type.String({ description: "The destination's name, or its URL as the API shows it." }),
  failing_since: Nullable(Timestamp()),
  disabled_reason: Nullable(Type.String()),
});

const StatsAnswer = Type.Object({
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
});

/**
 * `GET /api/stats/deliveries?window=1h|24h`: the organization's own deliveries per minute by outcome, its
 * backlog and its unhealthy destinations. Nothing installation-wide (other tenants' queue depth) is in it.
 */
export const statsRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const db = rt.database.db;
  const answers = new Map<string, { until: number; answer: Static<typeof StatsAnswer> }>();
  const remember = (key: string, answer: Static<typeof StatsAnswer>, ms: number) => {
    answers.delete(key);
    answers.set(key, { until: Date.now() + ms, answer });
    const oldest = answers.keys().next().value;
    if (answers.size > CACHE_ENTRIES && oldest !== undefined) answers.delete(oldest);
  };
  app.get(
    "/stats/deliveries",
    {
      schema: {
        tags: ["stats"],
        summary: "The organization's deliveries per minute by outcome",
        description:
          "For the last hour or day, one point per minute (zeros included): the deliveries created in that minute, by how they stand now (`delivered`, `failed`, or `waiting`: pending or held). Also the organization's pending and held counts (each counted up to 100,000) and up to 100 destinations that are failing and up to 100 disabled ones. Only this organization's deliveries are counted. A `24h` answer is reused for up to 30 s.",
        security: adminSecurity,
        querystring: Type.Object(
          {
            window: StringEnum(Object.keys(STAT_WINDOWS) as ["1h", "24h"], { description: "`1h` or `24h`." }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: StatsAnswer,
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { orgId } = adminOf(request);
      const window = request.query.window;
      const cacheKey = `${orgId}:${window}`;
      const cached = answers.get(cacheKey);
      if (cached && cached.until > Date.now()) return cached.answer;
      const unhealthyWhere = (which: "failing" | "disabled") =>
        and(
          eq(webhooks.orgId, orgId),
          notDeleted,
          which === "failing"
            ? and(eq(webhooks.enabled, true), isNotNull(webhooks.failingSince))
            : eq(webhooks.enabled, false),
        );
      const unhealthy = (which: "failing" | "disabled") =>
        db
          .select({
            id: webhooks.id,
            kind: webhooks.kind,
            name: sql<string>`coalesce(${webhooks.name}, ${webhooks.url})`,
            failingSince: webhooks.failingSince,
            disabledReason: webhooks.disabledReason,
          })
          .from(webhooks)
          .where(unhealthyWhere(which))
          .orderBy(webhooks.createdAt)
          .limit(MAX_LISTED);
      const [stats, failing, disabled] = await Promise.all([
        deliveryStats(db, orgId, window),
        unhealthy("failing"),
        unhealthy("disabled"),
      ]);
      const shown = (d: Awaited<ReturnType<typeof unhealthy>>[number]) => ({
        id: d.id,
        kind: d.kind,
        name: d.name,
        failing_since: iso(d.failingSince),
        disabled_reason: d.disabledReason,
      });
      const answer = {
        window,
        bucket_seconds: 60,
        series: stats.series.map((p) => ({ ...p, at: iso(p.at) as string })),
        pending: stats.pending,
        held: stats.held,
        failing: failing.map(shown),
        disabled: disabled.map(shown),
      };
      if (CACHE_MS[window] > 0) remember(cacheKey, answer, CACHE_MS[window]);
      return answer;
    },
  );
};
