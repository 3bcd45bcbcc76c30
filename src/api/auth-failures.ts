import type { FastifyRequest } from "fastify";
import type { Redis } from "ioredis";
import { ApiError } from "./errors.ts";

/** Failed authentications one client address may make per minute before it is refused unheard. */
export const AUTH_FAILURES_PER_MINUTE = 60;

/** Refused because of its failed authentications: 429 with the seconds until the window ends. */
export class TooManyAuthFailures extends ApiError {
  override name = "TooManyAuthFailures";
  constructor(retryAfterSeconds: number) {
    super(
      429,
      "ErrCodeRateLimited",
      `too many failed authentications from this address (${AUTH_FAILURES_PER_MINUTE} a minute); retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }
}

/**
 * Counts failed authentications per client address in Redis (so every API process shares the count), and
 * refuses an address past {@link AUTH_FAILURES_PER_MINUTE} before its key is hashed or looked up: a guesser
 * costs one Redis read per request, not a hash and a query. Admin and ingestion keys share the count.
 */
export class AuthFailures {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, queuePrefix: string) {
    this.redis = redis;
    this.prefix = `${queuePrefix}:authfail:`;
  }

  /** Throws {@link TooManyAuthFailures} when `request`'s address is over the limit. */
  async check(request: FastifyRequest): Promise<void> {
    const key = this.prefix + request.ip;
    // One read per request; the window's remaining time only for an address that is refused.
    if (Number((await this.redis.get(key)) ?? 0) >= AUTH_FAILURES_PER_MINUTE) {
      throw new TooManyAuthFailures(Math.max(1, Math.ceil((await this.redis.pttl(key)) / 1000)));
    }
  }

  /** Counts one failed authentication of `request`'s address; the window is a minute from its first. */
  async record(request: FastifyRequest): Promise<void> {
    const key = this.prefix + request.ip;
    const results = await this.redis.multi().incr(key).pexpire(key, 60_000, "NX").exec();
    if (!results) throw new Error("auth failure count: transaction aborted");
  }

  /** Runs `authenticate` for `request` unless its address is over the limit, counting a refusal. */
  async guard<T>(request: FastifyRequest, authenticate: () => Promise<T>): Promise<T> {
    await this.check(request);
    try {
      return await authenticate();
    } catch (err) {
      if (err instanceof ApiError && err.statusCode === 401) await this.record(request);
      throw err;
    }
  }
}
