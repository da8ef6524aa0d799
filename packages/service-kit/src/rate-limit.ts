import { randomUUID } from 'node:crypto';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Redis } from 'ioredis';

export interface RateLimitResult {
  /** Whether this call fits the limit (a denied call is not counted). */
  allowed: boolean;
  /** Calls still allowed in the current window after this one. */
  remaining: number;
  /** Milliseconds until the oldest counted call leaves the window, i.e. until a slot frees. */
  resetMs: number;
}

export interface RateLimiter {
  take(key: string): Promise<RateLimitResult>;
}

// Sliding-window log: one sorted-set member per allowed call, scored by Redis' own clock (TIME), so
// replicas with skewed clocks share one view of the window. Unlike a fixed window it never lets
// 2 × limit through around a window boundary. Memory is O(limit) per key, so it suits per-user
// limits (tens to thousands per window), not per-second floods. Pruning, counting and adding run
// in one script, hence atomically. TIME in a script is fine on Redis ≥ 5 (effects replication).
const SCRIPT = `
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', key, window)
local reset = window
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, limit - count, reset}
`;

const COMMAND = 'fleetSlidingWindowTake';

/**
 * A sliding-window rate limiter on Redis: at most `limit` calls per key in any `windowMs`.
 * Keys are `<prefix>:<key>` (after the client's own `keyPrefix`). The script is sent once and run
 * by its SHA afterwards (ioredis `defineCommand`).
 *
 * `take()` rejects with `FleetError` `UNAVAILABLE` (retryable) when Redis does not answer: the
 * caller decides whether to fail open or closed.
 *
 * @throws TypeError when `limit` or `windowMs` is not a positive integer.
 */
export function createRateLimiter(opts: { redis: Redis; prefix: string; limit: number; windowMs: number }): RateLimiter {
  const { redis, prefix, limit, windowMs } = opts;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new TypeError('limit must be a positive integer');
  if (!Number.isSafeInteger(windowMs) || windowMs < 1) throw new TypeError('windowMs must be a positive integer');
  const client = redis as Redis & Record<string, unknown>;
  if (typeof client[COMMAND] !== 'function') redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: SCRIPT });
  const run = client[COMMAND] as (key: string, limit: number, windowMs: number, member: string) => Promise<[number, number, number]>;

  return {
    async take(key: string): Promise<RateLimitResult> {
      let reply: [number, number, number];
      try {
        reply = await run.call(redis, `${prefix}:${key}`, limit, windowMs, randomUUID());
      } catch (err) {
        throw new FleetError(ErrorCode.UNAVAILABLE, `rate limiter unavailable: ${err instanceof Error ? err.message : String(err)}`, {
          cause: err,
        });
      }
      const [allowed, remaining, resetMs] = reply;
      return { allowed: allowed === 1, remaining: Math.max(0, remaining), resetMs: Math.max(0, resetMs) };
    },
  };
}
