import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { PROBE_TIMEOUT_MS, type Runtime } from "../../runtime.ts";
import { ApiError } from "../errors.ts";
import { errorResponses, NoQuery } from "../schemas.ts";

/** How long readiness waits for each of Postgres and Redis before calling it unavailable. */
export const READINESS_TIMEOUT_MS = PROBE_TIMEOUT_MS;

const Ok = Type.Object({ status: Type.Literal("ok") });

/** Liveness and readiness, outside the admin API: no key, no rate limit. */
export const healthRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  app.get(
    "/healthz",
    {
      schema: {
        tags: ["health"],
        summary: "Liveness",
        description: "200 while the process serves requests; it does not look at Postgres or Redis.",
        querystring: NoQuery,
        response: { 200: Ok, ...errorResponses },
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        tags: ["health"],
        summary: "Readiness",
        description: `200 when Postgres answers \`select 1\` and Redis answers PING, each within ${READINESS_TIMEOUT_MS} ms, and start-up (migrations) has finished; otherwise 503 \`ErrCodeUnavailable\` naming what failed.`,
        querystring: NoQuery,
        response: { 200: Ok, ...errorResponses },
      },
    },
    async () => {
      if (rt.pending.size > 0) {
        throw new ApiError(
          503,
          "ErrCodeUnavailable",
          `not ready: waiting for ${[...rt.pending].join(" and ")}`,
        );
      }
      // The monitor's own probe, so a probe already running is shared and any change is logged once there.
      await rt.dependencies.check();
      const failed = rt.dependencies.down();
      if (failed.length > 0) {
        throw new ApiError(503, "ErrCodeUnavailable", `not ready: ${failed.join(" and ")} unavailable`);
      }
      return { status: "ok" as const };
    },
  );
};
