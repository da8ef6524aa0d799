import type { IncomingHttpHeaders } from 'node:http';
import { DepositWebhookBody, ErrorCode, type FieldError, type FleetError, auditMessage, fieldErrors, isFleetError } from '@wallet-fleet/contracts';
import type { SignatureVerifier } from '../signature.js';
import type { DepositStore } from '../store/deposit-store.js';

export interface IntakeDeps {
  store: DepositStore;
  verifier: SignatureVerifier;
}

/** What became of one delivery; the HTTP route turns it into a status code. */
export type IntakeOutcome =
  | { kind: 'accepted'; jobId: string; created: boolean }
  | { kind: 'unauthorized'; reason: string }
  | { kind: 'bad_body'; message: string; fields: FieldError[] }
  | { kind: 'conflict'; error: FleetError; jobId: unknown }
  | { kind: 'unavailable'; error: unknown };

/**
 * The work of one deposit delivery, after rate limit and size (the route's): the signature over the
 * raw bytes, then the strict body schema, then the durable accept:
 * - `accepted` once the deposit row is committed and its `deposit.received` message is confirmed by
 *   the broker (same jobId for the same chain/txHash/eventIndex; `created` false for a duplicate);
 * - `unauthorized` (bad, stale or missing signature), `bad_body` (not JSON, schema), `conflict`
 *   (the same transfer with other token/amount/address), `unavailable` (the deposit could not be
 *   stored or enqueued durably: the sender retries, dedupe makes that harmless).
 */
export function createIntakeHandler(deps: IntakeDeps) {
  return async (body: Buffer, headers: IncomingHttpHeaders): Promise<IntakeOutcome> => {
    const verdict = deps.verifier.verify(body, headers);
    if (!verdict.ok) return { kind: 'unauthorized', reason: verdict.reason };
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
    const webhookId = String(headers['webhook-id']).slice(0, 200);
    try {
      const accepted = await deps.store.accept(deposit, webhookId, (depositId) => [
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
      if (isFleetError(err, ErrorCode.IDEMPOTENCY_CONFLICT)) return { kind: 'conflict', error: err, jobId: err.details?.jobId };
      return { kind: 'unavailable', error: err };
    }
  };
}
