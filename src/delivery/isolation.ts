import type { Redis } from "ioredis";

/**
 * Keeps one bad destination from taking everybody's capacity. Two mechanisms, both in Redis so every
 * worker process shares them:
 * - a cap on attempts in flight per destination, as leases in a sorted set scored by expiry: a worker
 *   killed while holding slots cannot pin its destination, its leases simply run out;
 * - a circuit breaker per destination: after `failureThreshold` failures in a row it opens for a
 *   cool-down, then lets one probe through; a successful probe closes it, a failed one reopens it for
 *   twice as long (up to `maxCooldownMs`).
 * A job turned away by either waits (delayed), spends no attempt, and holds no worker slot meanwhile.
 */
export interface IsolationSettings {
  /** Attempts in flight per destination across all workers. Default 16. */
  maxInFlight: number;
  /** How long a slot is held if its holder never gives it back, in ms. Default 15 000 (3 × the 5 s limit). */
  leaseMs: number;
  /** Failures in a row that open the breaker. Default 5. */
  failureThreshold: number;
  /** First cool-down, in ms. Default 30 000. */
  cooldownMs: number;
  /** Longest cool-down after repeated failed probes, in ms. Default 300 000. */
  maxCooldownMs: number;
}

export const DEFAULT_ISOLATION: IsolationSettings = {
  maxInFlight: 16,
  leaseMs: 15_000,
  failureThreshold: 5,
  cooldownMs: 30_000,
  maxCooldownMs: 300_000,
};

export type Admission =
  | { admitted: true; probe: boolean }
  | { admitted: false; retryAt: number; reason: "cap" | "open" };

export type BreakerState = "closed" | "open" | "half-open";

// KEYS: 1 in-flight zset, 2 breaker hash. ARGV: now, leaseMs, cap, token.
// Returns {1, probe} when admitted, {0, retryAt, reason} when not.
const ACQUIRE = `
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[2], 'open_until', 'probe_until', 'full_since')
local openUntil = tonumber(b[1] or '0') or 0
local probeUntil = tonumber(b[2] or '0') or 0
if openUntil > now then return {0, openUntil, 'open'} end
local probe = 0
if openUntil > 0 then
  if probeUntil > now then return {0, probeUntil, 'open'} end
  probe = 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= cap then
  -- The longer a destination stays full, the longer its waiting jobs sleep (100 ms up to 5 s), so a hung
  -- destination's backlog does not keep cycling through the workers.
  local since = tonumber(redis.call('HGET', KEYS[2], 'full_since') or '0') or 0
  if since == 0 then
    since = now
    redis.call('HSET', KEYS[2], 'full_since', now)
    redis.call('PEXPIRE', KEYS[2], lease * 20)
  end
  local wait = math.min(5000, math.max(100, math.floor((now - since) / 2)))
  return {0, now + wait, 'cap'}
end
if b[3] then redis.call('HDEL', KEYS[2], 'full_since') end
redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
redis.call('PEXPIRE', KEYS[1], lease * 2)
if probe == 1 then
  redis.call('HSET', KEYS[2], 'probe_until', now + lease)
end
return {1, probe}
`;

// KEYS: 1 in-flight zset, 2 breaker hash. ARGV: now, token, ok (1/0), threshold, cooldown, maxCooldown, ttl.
// Returns the breaker state after the outcome: 0 closed, 1 open.
const RELEASE = `
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[2])
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
  return 0
end
local failures = redis.call('HINCRBY', KEYS[2], 'failures', 1)
local b = redis.call('HMGET', KEYS[2], 'open_until', 'cooldown')
local openUntil = tonumber(b[1] or '0') or 0
local cooldown = tonumber(b[2] or '0') or 0
local result = 0
if openUntil > 0 and openUntil <= now then
  cooldown = math.min(math.max(cooldown * 2, tonumber(ARGV[5])), tonumber(ARGV[6]))
  redis.call('HSET', KEYS[2], 'open_until', now + cooldown, 'cooldown', cooldown, 'probe_until', 0)
  result = 1
elseif openUntil == 0 and failures >= tonumber(ARGV[4]) then
  cooldown = tonumber(ARGV[5])
  redis.call('HSET', KEYS[2], 'open_until', now + cooldown, 'cooldown', cooldown, 'probe_until', 0)
  result = 1
elseif openUntil > now then
  result = 1
end
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
return result
`;

type IsolationRedis = Redis & {
  esAcquire(
    inflight: string,
    breaker: string,
    now: number,
    lease: number,
    cap: number,
    token: string,
  ): Promise<[number, number, string?]>;
  esRelease(
    inflight: string,
    breaker: string,
    now: number,
    token: string,
    ok: 0 | 1,
    threshold: number,
    cooldown: number,
    maxCooldown: number,
    ttl: number,
  ): Promise<number>;
};

export class DestinationGuard {
  private readonly redis: IsolationRedis;
  private readonly prefix: string;
  readonly settings: IsolationSettings;

  /** `prefix` is the queue prefix, so tests and tenants of one Redis stay apart. */
  constructor(redis: Redis, prefix: string, settings: Partial<IsolationSettings> = {}) {
    this.settings = { ...DEFAULT_ISOLATION, ...settings };
    this.prefix = prefix;
    if (!("esAcquire" in redis)) {
      redis.defineCommand("esAcquire", { numberOfKeys: 2, lua: ACQUIRE });
      redis.defineCommand("esRelease", { numberOfKeys: 2, lua: RELEASE });
    }
    this.redis = redis as IsolationRedis;
  }

  private keys(webhookId: string): [string, string] {
    return [`${this.prefix}:dest:${webhookId}:inflight`, `${this.prefix}:dest:${webhookId}:breaker`];
  }

  /**
   * Asks for a slot for one attempt. `token` identifies the lease (the delivery id); `maxInFlight`
   * overrides the default cap for this destination.
   */
  async acquire(
    webhookId: string,
    token: string,
    maxInFlight?: number | null,
    now = Date.now(),
  ): Promise<Admission> {
    const [inflight, breaker] = this.keys(webhookId);
    const [ok, value, reason] = await this.redis.esAcquire(
      inflight,
      breaker,
      now,
      this.settings.leaseMs,
      maxInFlight ?? this.settings.maxInFlight,
      token,
    );
    if (ok === 1) return { admitted: true, probe: value === 1 };
    return { admitted: false, retryAt: value, reason: reason === "cap" ? "cap" : "open" };
  }

  /**
   * Gives the slot back with the attempt's outcome. `ok` is false for outcomes that say the destination is
   * unwell (timeouts, network errors, 5xx, 429); a 4xx answer is a healthy endpoint refusing, so it counts
   * as ok here. Returns the breaker state afterwards.
   */
  async release(webhookId: string, token: string, ok: boolean, now = Date.now()): Promise<BreakerState> {
    const [inflight, breaker] = this.keys(webhookId);
    const s = this.settings;
    const open = await this.redis.esRelease(
      inflight,
      breaker,
      now,
      token,
      ok ? 1 : 0,
      s.failureThreshold,
      s.cooldownMs,
      s.maxCooldownMs,
      s.maxCooldownMs * 4,
    );
    return open === 1 ? "open" : "closed";
  }

  /** Gives a slot back without an outcome: the attempt never went out (the delivery was gone or not due). */
  async cancel(webhookId: string, token: string): Promise<void> {
    const [inflight] = this.keys(webhookId);
    await this.redis.zrem(inflight, token);
  }

  /** The breaker's state now, for metrics and the API. */
  async state(webhookId: string, now = Date.now()): Promise<BreakerState> {
    const [, breaker] = this.keys(webhookId);
    const openUntil = Number((await this.redis.hget(breaker, "open_until")) ?? 0);
    if (openUntil === 0) return "closed";
    return openUntil > now ? "open" : "half-open";
  }
}
