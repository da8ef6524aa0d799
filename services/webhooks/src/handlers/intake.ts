import type { IncomingHttpHeaders } from 'node:http';
import { DepositWebhookBody, type FieldError, auditMessage, fieldErrors } from '@wallet-fleet/contracts';
import type { RateLimiter } from '@wallet-fleet/service-kit';
import type { ReplayGuard } from '../replay-guard.js';
import type { SignatureVerifier } from '../signature.js';
import type { DepositStore } from '../store/deposit-store.js';

export interface IntakeDeps {
  store: DepositStore;
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
 * body schema, then the durable accept:
 * - `accepted` once the deposit row is committed and its `deposit.received` message is confirmed by
 *   the broker (same jobId for the same claim: chain, txHash, eventIndex, token, amount, toAddress; `created`
 *   false for a duplicate; another claim for the same transfer is another job, which the chain decides);
 * - `unauthorized` (bad, stale or missing signature), `bad_body` (not JSON, schema), `rate_limited`
 *   (the sender), `replayed` (its webhook-id with another body), `unavailable` (the deposit could not be
 *   stored or enqueued durably: the sender retries, dedupe makes that harmless).
 */
export function createIntakeHandler(deps: IntakeDeps) {
  return async (body: Buffer, headers: IncomingHttpHeaders): Promise<IntakeOutcome> => {
    const verdict = deps.verifier.verify(body, headers);
    if (!verdict.ok) return { kind: 'unauthorized', reason: verdict.reason };
    const { sender } = verdict;
    try {
      const r = await deps.limiter.take(sender);
      if (!r.allowed) return { kind: 'rate_limited', sender, retryAfterMs: r.resetMs };
    } catch (err) {
      deps.degraded('rate_limit', err);
    }
    const webhookId = String(headers['webhook-id']);
    try {
      if ((await deps.replay.check(sender, webhookId, body)) === 'different') return { kind: 'replayed' };
    } catch (err) {
      deps.degraded('replay_guard', err);
    }
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
      const accepted = await deps.store.accept(deposit, `${sender}:${webhookId}`.slice(0, 200), (depositId) => [
        { routingKey: 'deposit.received', messageId: depositId, payload: { depositId, ...deposit } },
        auditMessage('webhooks', 'deposit.accept', {
          resource: { type: 'deposit', id: depositId },
          status: 'success',
          after: { chain: deposit.chain, txHash: deposit.txHash, eventIndex: deposit.eventIndex, amount: deposit.amount, toAddress: deposit.toAddress },
        }),
      ]);
      // A duplicate waits too: the first delivery may have been answered 503 (or its process
      // killed) after the commit but before the publish, and this is the one that gets the 200.
      await deps.store.ensurePublished(accepted);
      return { kind: 'accepted', jobId: accepted.jobId, created: accepted.created };
    } catch (err) {
      return { kind: 'unavailable', error: err };
    }
  };
}
