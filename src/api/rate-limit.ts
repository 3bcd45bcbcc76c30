import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Runtime } from "../runtime.ts";
import { ApiError } from "./errors.ts";

/**
 * Registers a per-minute request limit on a scope, counted in Redis so every API process shares it, and
 * answered with 429 `ErrCodeRateLimited` and `Retry-After`. A Redis outage answers 503 rather than lifting
 * the limit. `name` keeps the counters of different limits apart; `per` names the key in the message.
 * `hook: "preParsing"` counts after authentication and before the body is read.
 */
export async function limitRequests(
  scope: FastifyInstance,
  rt: Runtime,
  options: {
    name: string;
    max: number;
    per: string;
    key: (request: FastifyRequest) => string;
    hook?: "onRequest" | "preParsing";
  },
): Promise<void> {
  await scope.register(rateLimit, {
    hook: options.hook ?? "onRequest",
    max: options.max,
    timeWindow: 60_000,
    redis: rt.redis,
    nameSpace: `${rt.config.queuePrefix}:ratelimit:${options.name}:`,
    keyGenerator: options.key,
    skipOnError: false,
    errorResponseBuilder: (_request, context) =>
      new ApiError(
        context.statusCode,
        "ErrCodeRateLimited",
        `rate limit of ${context.max} requests per minute per ${options.per} exceeded; retry in ${context.after}`,
      ),
  });
}
