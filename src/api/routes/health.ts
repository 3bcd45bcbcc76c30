import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { sql } from "drizzle-orm";
import { Type } from "typebox";
import type { Runtime } from "../../runtime.ts";
import { ApiError } from "../errors.ts";
import { errorResponses, NoQuery } from "../schemas.ts";

/** How long readiness waits for each of Postgres and Redis before calling it unavailable. */
export const READINESS_TIMEOUT_MS = 2000;

/** Runs `check` with a deadline; returns why it failed, or `undefined` when it answered in time. */
async function probe(check: () => Promise<unknown>, timeoutMs: number): Promise<string | undefined> {
  const abort = new AbortController();
  const running = check().then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  const timedOut = sleep(timeoutMs, `no answer within ${timeoutMs} ms`, { signal: abort.signal }).catch(
    () => undefined,
  );
  try {
    return await Promise.race([running, timedOut]);
  } finally {
    abort.abort();
  }
}

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
        description: `200 when Postgres answers \`select 1\` and Redis answers PING, each within ${READINESS_TIMEOUT_MS} ms; otherwise 503 \`ErrCodeUnavailable\` naming what failed.`,
        querystring: NoQuery,
        response: { 200: Ok, ...errorResponses },
      },
    },
    async (request) => {
      const [postgres, redis] = await Promise.all([
        probe(() => rt.database.db.execute(sql`select 1`), READINESS_TIMEOUT_MS),
        probe(() => rt.redis.ping(), READINESS_TIMEOUT_MS),
      ]);
      if (postgres || redis) {
        request.log.warn({ postgres, redis }, "not ready");
        const failed = [postgres ? "postgres" : undefined, redis ? "redis" : undefined].filter(Boolean);
        throw new ApiError(503, "ErrCodeUnavailable", `not ready: ${failed.join(" and ")} unavailable`);
      }
      return { status: "ok" as const };
    },
  );
};
