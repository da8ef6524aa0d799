import type { IncomingHttpHeaders } from 'node:http';
import { DepositWebhookBody, type FieldError, fieldErrors } from '@wallet-fleet/contracts';
import type { RateLimiter } from '@wallet-fleet/service-kit';
import type { JobPublisher } from '../job-publisher.js';
import type { ReplayGuard } from '../replay-guard.js';
import type { SignatureVerifier } from '../signature.js';
import type { DepositStore } from '../store/deposit-store.js';

export interface IntakeDeps {
  store: Pick<DepositStore, 'accept'>;
  jobs: Pick<JobPublisher, 'publish'>;
  verifier: SignatureVerifier;
  /** Keyed by the authenticated sender (the name of the secret that verified), never by a header. */
  limiter: RateLimiter;
  replay: ReplayGuard;
  /** Told when the limiter or the replay guard (Redis) did not answer and the delivery went on without it. */
  degraded(what: 'rate_limit' | 'replay_guard', err: unknown): void;
}

/** What became of one delivery; the HTTP route turns it into a status code. */
export type IntakeOutcome =
  | { kind: 'accepted'; jobId: string; created: boolean }
  | { kind: 'unauthorized'; reason: string }
  | { kind: 'rate_limited'; sender: string; retryAfterMs: number }
  | { kind: 'replayed' }
  | { kind: 'bad_body'; message: string; fields: FieldError[] }
  | { kind: 'unavailable'; error: unknown };

/**
 * The work of one deposit delivery, after the size limit (the route's): the signature over the raw
 * bytes, the rate limit of the sender it authenticates, the `webhook-id` replay guard, the strict
 * body schema, then the durable accept: one INSERT (its own commit), then the job's `deposit.received`
 * and its accept audit event published straight from here (no outbox row, no relay pass):
 * - `accepted` once the deposit row is committed and both messages are confirmed by the broker (same
 *   jobId for the same claim: chain, txHash, eventIndex, token, amount, toAddress; `created` false for
 *   a duplicate, which publishes only when the job is not confirmed yet; another claim for the same
 *   transfer is another job, which the chain decides);
 * - `unauthorized` (bad, stale or missing signature), `bad_body` (not JSON, schema), `rate_limited`
 *   (the sender), `replayed` (its webhook-id with another body), `unavailable` (the deposit could not be
 *   stored or enqueued durably: the sender retries, dedupe makes that harmless; a row stored and never
 *   confirmed is sent again by the republisher if the sender does not).
 */
export function createIntakeHandler(deps: IntakeDeps) {
  return async (body: Buffer, headers: IncomingHttpHeaders): Promise<IntakeOutcome> => {
    const verdict = deps.verifier.verify(body, headers);
    if (!verdict.ok) return { kind: 'unauthorized', reason: verdict.reason };
    const { sender } = verdict;
    // The rate limit and the replay guard are asked at once (one Redis round trip of waiting). The
    // guard then remembers the id of a delivery the limit refuses too, which changes nothing: its
    // retry carries the same id and body (`same`), and another body under that id is refused anyway.
    const webhookId = String(headers['webhook-id']);
    const [limit, replay] = await Promise.allSettled([deps.limiter.take(sender), deps.replay.check(sender, webhookId, body)]);
    if (limit.status === 'rejected') deps.degraded('rate_limit', limit.reason);
    else if (!limit.value.allowed) return { kind: 'rate_limited', sender, retryAfterMs: limit.value.resetMs };
    if (replay.status === 'rejected') deps.degraded('replay_guard', replay.reason);
    else if (replay.value === 'different') return { kind: 'replayed' };
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return { kind: 'bad_body', message: 'body is not JSON', fields: [{ path: '(root)', message: 'not JSON' }] };
    }
    const parsed = DepositWebhookBody.safeParse(json);
    if (!parsed.success) {
      const fields = fieldErrors(parsed.error);
      return { kind: 'bad_body', message: `invalid ${fields.map((f) => f.path).join(', ')}`, fields };
    }
    const deposit = parsed.data;
    try {
      const accepted = await deps.store.accept(deposit, `${sender}:${webhookId}`.slice(0, 200));
      // A duplicate publishes too while its job is not confirmed: the first delivery may have been
      // answered 503 (or its process killed) after the commit but before the confirm, and this is the
      // one that gets the 200. Published twice meanwhile at worst, which the consumers dedupe.
      if (!accepted.published) await deps.jobs.publish(accepted);
      return { kind: 'accepted', jobId: accepted.depositId, created: accepted.created };
    } catch (err) {
      return { kind: 'unavailable', error: err };
    }
  };
}
