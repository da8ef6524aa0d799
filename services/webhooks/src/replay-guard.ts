import { createHash } from 'node:crypto';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Redis } from '@wallet-fleet/service-kit';

/**
 * How long a `webhook-id` is remembered: a signature is accepted while its timestamp is within
 * 5 minutes of our clock either way, so one signed message can arrive at most 10 minutes apart.
 */
const REPLAY_WINDOW_SECONDS = 600;

/** `first`: never seen; `same`: seen with this very body (a retry); `different`: seen with another body. */
export type ReplayVerdict = 'first' | 'same' | 'different';

export interface ReplayGuard {
  /**
   * Remembers `webhookId` of `sender` with the body's digest for the replay window and says whether it
   * was seen before. Throws UNAVAILABLE when Redis does not answer (the caller decides to fail open).
   */
  check(sender: string, webhookId: string, body: Buffer): Promise<ReplayVerdict>;
}

/**
 * `webhook-id` dedupe within the signature tolerance window, on Redis (fleet-wide): the first body
 * seen under an id is kept (SET NX), so a second delivery of the same id must carry the same bytes.
 * A sender retrying a delivery resends the same id and body (`same`), which goes on to the
 * deposit's own dedupe and gets the same answer; the same id with another body (`different`) is
 * someone replaying a signature over a body it did not sign, or a sender bug: refused.
 */
export function createReplayGuard(redis: Redis, windowSeconds = REPLAY_WINDOW_SECONDS): ReplayGuard {
  return {
    async check(sender, webhookId, body) {
      const digest = createHash('sha256').update(body).digest('base64url');
      const key = `webhook-id:${sender}:${createHash('sha256').update(webhookId).digest('base64url')}`;
      try {
        // SET NX GET (Redis ≥ 7): one round trip sets the digest or returns the one already there.
        const previous = (await redis.call('SET', key, digest, 'NX', 'GET', 'EX', String(windowSeconds))) as string | null;
        if (previous === null) return 'first';
        return previous === digest ? 'same' : 'different';
      } catch (err) {
        throw new FleetError(ErrorCode.UNAVAILABLE, `replay guard unavailable: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
  };
}
