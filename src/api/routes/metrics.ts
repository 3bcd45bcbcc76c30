import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import type { Runtime } from "../../runtime.ts";
import { errorResponses, NoQuery } from "../schemas.ts";

/** Prometheus metrics of this process, outside the admin API: no key, no rate limit. */
export const metricsRoutes: FastifyPluginAsyncTypebox<{ rt: Runtime }> = async (app, { rt }) => {
  const registry = rt.metrics.registry;
  app.get(
    "/metrics",
    {
      schema: {
        tags: ["metrics"],
        summary: "Prometheus metrics",
        description:
          "This process's metrics in the Prometheus text format (0.0.4): delivery attempts and their durations, jobs held back by a destination's cap or breaker, queue sizes and lag, held deliveries, and failing, disabled or broken destinations (those last read from Postgres and Redis on each scrape; one that is unreachable is left out and counted in `escalation_shield_metrics_scrape_errors_total`). Under `start` it includes the in-process workers. **No authentication**: do not expose the API port publicly, or restrict `/metrics` to your Prometheus at the reverse proxy.",
        querystring: NoQuery,
        produces: [registry.contentType],
        response: {
          200: Type.String({ description: "Prometheus text exposition format, version 0.0.4." }),
          ...errorResponses,
        },
      },
    },
    async (_request, reply) => {
      const text = await registry.metrics();
      // Set before sending a string: Fastify then sends it as it is instead of serializing it as JSON.
      return reply.header("content-type", registry.contentType).send(text);
    },
  );
};
