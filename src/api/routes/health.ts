import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { PROBE_TIMEOUT_MS, type Runtime } from "../../runtime.ts";
import { sealedKeyIds } from "../../secrets/coverage.ts";
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
        description: `200 when Postgres answers \`select 1\` and Redis answers PING, each within ${READINESS_TIMEOUT_MS} ms, start-up (migrations) has finished, and every stored secret is sealed with a key this process has (SECRETS_KEY or SECRETS_KEY_PREVIOUS); otherwise 503 \`ErrCodeUnavailable\` naming what failed (for secrets, the key id needed).`,
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
      // A process that cannot open the stored secrets cannot sign a delivery or a test event.
      const missing = await sealedKeyIds(rt.database.db, rt.box.keyIds());
      if (missing.length > 0) {
        throw new ApiError(
          503,
          "ErrCodeUnavailable",
          `not ready: stored secrets are sealed with key ${missing.join(", ")}, which is neither SECRETS_KEY (${rt.box.current.id}) nor SECRETS_KEY_PREVIOUS; deliveries that need it are held until it is configured`,
        );
      }
      return { status: "ok" as const };
    },
  );
};
