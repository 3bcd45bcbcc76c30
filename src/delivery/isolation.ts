import type { Redis } from "ioredis";

/**
 * Keeps one bad destination from taking everybody's capacity. Two mechanisms, both in Redis so every
 * worker process shares them:
 * - a cap on attempts in flight per destination, as leases in a sorted set scored by expiry: a worker
 *   killed while holding slots cannot pin its destination, its leases simply run out;
 * - a circuit breaker per destination: after `failureThreshold` failures in a row it opens for a
 *   cool-down, then lets one probe through; a successful probe closes it, a failed one reopens it for
 *   twice as long (up to `maxCooldownMs`).
 * - a rate limit per destination when it has one (`rate_limit_per_second`, fractional allowed): admissions
 *   are at least 1/rate apart across all workers. A job turned away by it reserves the next free slot and
 *   sleeps until then, so a backlog drains at the rate without polling.
 * A job turned away by any of them waits (delayed), spends no attempt, and holds no worker slot meanwhile. It is
 * remembered as waiting for its destination and woken when a slot frees (or the breaker closes), with its own
 * timer as the fallback, so held-back work does not poll. All times are Redis's own (`TIME`), so workers whose
 * clocks disagree still share one cap and one breaker.
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
  | {
      admitted: false;
      /** When to look again at the latest, on the guard's clock (Redis `TIME`, or the `now` given). */
      retryAt: number;
      /** The same as a wait from now, in ms: what a worker turns into a delay on its own clock. */
      waitMs: number;
      reason: "cap" | "open" | "rate";
    };

export type BreakerState = "closed" | "open" | "half-open";

/**
 * How long a job turned away by a full destination sleeps at most, in ms. It is normally woken sooner, when
 * a slot frees (see {@link DestinationGuard.release}); this is the fallback for a wake-up that was missed.
 */
export const CAP_WAIT_MS = 5000;
/** Most jobs remembered as waiting for one destination; those past it rely on their own timer. */
const MAX_WAITERS = 10_000;

// Every script reads the time from Redis itself unless a test passes one (ARGV[1] not empty): leases and
// breaker windows then mean the same thing to every worker, whatever its own clock says.
const NOW = `
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

// Wakes jobs waiting for this destination, as many as it has free slots (at most 16 per call), oldest first.
// KEYS[4] is the set of destinations that have waiting jobs; `member` is this one.
const WAKE = `
local function wake(cap, member)
  if redis.call('EXISTS', KEYS[3]) == 0 then return {} end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  local free = math.min(16, cap - redis.call('ZCARD', KEYS[1]))
  if free <= 0 then return {} end
  local woken = redis.call('ZPOPMIN', KEYS[3], free)
  if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('SREM', KEYS[4], member) end
  local ids = {}
  for i = 1, #woken, 2 do ids[#ids + 1] = woken[i] end
  return ids
end
`;

/** How early (ms) a job may come back for its reserved rate slot; timers rarely fire early, never by much. */
const RATE_SLACK_MS = 10;

// KEYS: 1 in-flight zset, 2 breaker hash, 3 waiters zset, 4 set of destinations with waiters, 5 rate hash
// ('last' admission, 'tat' the next free slot, 'r:<job>' a job's reserved slot).
// ARGV: now, leaseMs, cap, token, waiter job id, destination id, rate interval in ms (0: no rate limit).
// Returns {1, probe} when admitted, {0, retryAt, reason, now} when not.
const ACQUIRE = `${NOW}
local lease = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local interval = tonumber(ARGV[7]) or 0
local function wait(untilAt, reason)
  if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[3], 'NX', now, ARGV[5])
    redis.call('ZREMRANGEBYRANK', KEYS[3], ${MAX_WAITERS}, -1)
    redis.call('PEXPIRE', KEYS[3], 600000)
    redis.call('SADD', KEYS[4], ARGV[6])
  end
  return {0, untilAt, reason, now}
end
local b = redis.call('HMGET', KEYS[2], 'open_until', 'probe_until')
local openUntil = tonumber(b[1] or '0') or 0
local probeUntil = tonumber(b[2] or '0') or 0
if openUntil > now then return wait(openUntil, 'open') end
local probe = 0
if openUntil > 0 then
  if probeUntil > now then return wait(probeUntil, 'open') end
  probe = 1
end
local who = 'r:' .. (ARGV[5] ~= '' and ARGV[5] or ARGV[4])
if interval > 0 then
  local r = redis.call('HMGET', KEYS[5], 'last', 'tat', who)
  local last = tonumber(r[1] or '0') or 0
  local tat = tonumber(r[2] or '0') or 0
  local mine = tonumber(r[3] or '0') or 0
  -- However jobs come back (late, early, after a cap wait), two admissions are never closer than this.
  local earliest = last + interval - ${RATE_SLACK_MS}
  if mine == 0 and (tat > now or earliest > now) then
    local slot = math.max(tat, now, last + interval)
    redis.call('HSET', KEYS[5], 'tat', slot + interval, who, slot)
    redis.call('PEXPIRE', KEYS[5], slot - now + 60000)
    redis.call('SADD', KEYS[4], ARGV[6])
    return {0, slot, 'rate', now}
  end
  if mine > now + ${RATE_SLACK_MS} or earliest > now then
    return {0, math.max(mine, earliest + ${RATE_SLACK_MS}), 'rate', now}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= cap then return wait(now + ${CAP_WAIT_MS}, 'cap') end
if interval > 0 then
  local tat = tonumber(redis.call('HGET', KEYS[5], 'tat') or '0') or 0
  redis.call('HDEL', KEYS[5], who)
  redis.call('HSET', KEYS[5], 'last', now, 'tat', math.max(tat, now + interval))
  if redis.call('PTTL', KEYS[5]) < interval + 60000 then redis.call('PEXPIRE', KEYS[5], interval + 60000) end
end
if ARGV[5] ~= '' and redis.call('ZREM', KEYS[3], ARGV[5]) == 1 and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[6])
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
redis.call('PEXPIRE', KEYS[1], lease * 2)
if probe == 1 then
  redis.call('HSET', KEYS[2], 'probe_until', now + lease)
end
return {1, probe}
`;

// KEYS: 1 in-flight zset, 2 breaker hash, 3 waiters zset, 4 set of destinations with waiters.
// ARGV: now, token, ok (1/0), threshold, cooldown, maxCooldown, ttl, cap, destination id.
// Returns {breaker state after the outcome (0 closed, 1 open), job ids to wake...}.
const RELEASE = `${NOW}${WAKE}
redis.call('ZREM', KEYS[1], ARGV[2])
local cap = tonumber(ARGV[8])
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
  return {0, unpack(wake(cap, ARGV[9]))}
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
if result == 1 then return {1} end
return {0, unpack(wake(cap, ARGV[9]))}
`;

// KEYS: 1 in-flight zset, 2 breaker hash, 3 waiters zset, 4 set of destinations with waiters.
// ARGV: now, token, cap, destination id. Returns job ids to wake.
const CANCEL = `${NOW}${WAKE}
redis.call('ZREM', KEYS[1], ARGV[2])
local openUntil = tonumber(redis.call('HGET', KEYS[2], 'open_until') or '0') or 0
if openUntil > now then return {} end
return wake(tonumber(ARGV[3]), ARGV[4])
`;

// KEYS: 1 rate hash. ARGV: interval ms, then the job ids whose reserved slots go. The next free slot
// becomes the one after the latest reservation left (or after the last admission).
const FORGET = `
local interval = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('HDEL', KEYS[1], 'r:' .. ARGV[i]) end
local all = redis.call('HGETALL', KEYS[1])
local last, latest = 0, 0
for i = 1, #all, 2 do
  local v = tonumber(all[i + 1]) or 0
  if all[i] == 'last' then last = v
  elseif string.sub(all[i], 1, 2) == 'r:' and v > latest then latest = v end
end
if #all > 0 then redis.call('HSET', KEYS[1], 'tat', math.max(last, latest) + interval) end
return 1
`;

// KEYS: 1 breaker hash. ARGV: now. Returns {open_until, now}.
const STATE = `${NOW}
return {tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') or 0, now}
`;

type Arg = string | number;

type IsolationRedis = Redis & {
  esAcquire(...args: Arg[]): Promise<[number, number, string?, number?]>;
  esRelease(...args: Arg[]): Promise<[number, ...string[]]>;
  esCancel(...args: Arg[]): Promise<string[]>;
  esState(...args: Arg[]): Promise<[number, number]>;
  esForget(...args: Arg[]): Promise<number>;
};

/** What giving a slot back did: the breaker's state after it, and the waiting jobs to wake. */
export interface Released {
  breaker: BreakerState;
  wake: string[];
}

export class DestinationGuard {
  private readonly redis: IsolationRedis;
  private readonly prefix: string;
  readonly settings: IsolationSettings;

  /** `prefix` is the queue prefix, so tests and tenants of one Redis stay apart. */
  constructor(redis: Redis, prefix: string, settings: Partial<IsolationSettings> = {}) {
    this.settings = { ...DEFAULT_ISOLATION, ...settings };
    this.prefix = prefix;
    if (!("esAcquire" in redis)) {
      redis.defineCommand("esAcquire", { numberOfKeys: 5, lua: ACQUIRE });
      redis.defineCommand("esRelease", { numberOfKeys: 4, lua: RELEASE });
      redis.defineCommand("esCancel", { numberOfKeys: 4, lua: CANCEL });
      redis.defineCommand("esState", { numberOfKeys: 1, lua: STATE });
      redis.defineCommand("esForget", { numberOfKeys: 1, lua: FORGET });
    }
    this.redis = redis as IsolationRedis;
  }

  private keys(webhookId: string): [string, string, string, string] {
    const base = `${this.prefix}:dest:${webhookId}`;
    return [`${base}:inflight`, `${base}:breaker`, `${base}:waiting`, this.waitingSet()];
  }

  private waitingSet(): string {
    return `${this.prefix}:dest-waiting`;
  }

  private rateKey(webhookId: string): string {
    return `${this.prefix}:dest:${webhookId}:rate`;
  }

  /**
   * Destinations that have jobs waiting for them (at their cap, with their breaker open, or for their rate
   * slot): their pending deliveries are held back, not lost, so the sweeper need not look at them. A
   * destination whose waiting list and rate slots have since expired is dropped from the set here.
   */
  async heldBack(): Promise<string[]> {
    const ids = await this.redis.smembers(this.waitingSet());
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.exists(this.keys(id)[2], this.rateKey(id));
    const results = (await pipeline.exec()) ?? [];
    const waiting = (i: number) => Number(results[i]?.[1] ?? 0) > 0;
    const stale = ids.filter((_, i) => !waiting(i));
    if (stale.length > 0) await this.redis.srem(this.waitingSet(), ...stale);
    return ids.filter((_, i) => waiting(i));
  }

  /**
   * Asks for a slot for one attempt. `token` identifies the lease (the delivery id); `maxInFlight` overrides
   * the default cap for this destination; `ratePerSecond` (fractional allowed; null or absent: none) spaces
   * admissions at least 1/rate seconds apart. A job turned away by the cap or breaker is remembered as `waiter`
   * (its job id), to be woken by {@link release} when a slot frees; one turned away by the rate holds a
   * reserved slot under that id. `now` (ms) replaces Redis's clock, for tests only.
   */
  async acquire(
    webhookId: string,
    token: string,
    maxInFlight?: number | null,
    now?: number,
    waiter = "",
    ratePerSecond?: number | null,
  ): Promise<Admission> {
    const [ok, value, reason, clock] = await this.redis.esAcquire(
      ...this.keys(webhookId),
      this.rateKey(webhookId),
      now ?? "",
      this.settings.leaseMs,
      maxInFlight ?? this.settings.maxInFlight,
      token,
      waiter,
      webhookId,
      ratePerSecond ? Math.ceil(1000 / ratePerSecond) : 0,
    );
    if (ok === 1) return { admitted: true, probe: value === 1 };
    return {
      admitted: false,
      retryAt: value,
      waitMs: Math.max(0, value - (clock ?? value)),
      reason: reason === "cap" || reason === "rate" ? reason : "open",
    };
  }

  /**
   * Gives the slot back with the attempt's outcome. `ok` is false for outcomes that say the destination is
   * unwell (timeouts, network errors, 5xx, 429); a 4xx answer is a healthy endpoint refusing, so it counts
   * as ok here. Returns the breaker state afterwards and the waiting jobs a freed slot should wake.
   */
  async release(
    webhookId: string,
    token: string,
    ok: boolean,
    now?: number,
    maxInFlight?: number | null,
  ): Promise<Released> {
    const s = this.settings;
    const [open, ...wake] = await this.redis.esRelease(
      ...this.keys(webhookId),
      now ?? "",
      token,
      ok ? 1 : 0,
      s.failureThreshold,
      s.cooldownMs,
      s.maxCooldownMs,
      s.maxCooldownMs * 4,
      maxInFlight ?? s.maxInFlight,
      webhookId,
    );
    return { breaker: open === 1 ? "open" : "closed", wake };
  }

  /**
   * Gives a slot back without an outcome: the attempt never went out (the delivery was gone or not due).
   * Returns the waiting jobs to wake.
   */
  async cancel(webhookId: string, token: string, maxInFlight?: number | null): Promise<string[]> {
    return this.redis.esCancel(
      ...this.keys(webhookId),
      "",
      token,
      maxInFlight ?? this.settings.maxInFlight,
      webhookId,
    );
  }

  /**
   * Gives back the rate slots reserved by `jobIds` (jobs whose work went elsewhere, such as alerts a digest
   * carried), so later work is not kept waiting behind slots nobody will use.
   */
  async forgetRateSlots(webhookId: string, ratePerSecond: number, jobIds: string[]): Promise<void> {
    for (let i = 0; i < jobIds.length; i += 500) {
      await this.redis.esForget(
        this.rateKey(webhookId),
        Math.ceil(1000 / ratePerSecond),
        ...jobIds.slice(i, i + 500),
      );
    }
  }

  /** The breaker's state now (by Redis's clock unless `now` is given), for metrics and the API. */
  async state(webhookId: string, now?: number): Promise<BreakerState> {
    const [, breaker] = this.keys(webhookId);
    const [openUntil, clock] = await this.redis.esState(breaker, now ?? "");
    if (openUntil === 0) return "closed";
    return openUntil > clock ? "open" : "half-open";
  }
}
