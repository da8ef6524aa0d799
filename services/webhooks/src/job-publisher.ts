import { createHash } from 'node:crypto';
import { auditMessage } from '@wallet-fleet/contracts';
import { Batcher, type Broker } from '@wallet-fleet/messaging';
import type { Logger } from '@wallet-fleet/service-kit';
import type { DepositStore, StoredClaim } from './store/deposit-store.js';

/**
 * The accept audit event's id, derived from the deposit id (a name-based UUID, version 5 layout over
 * SHA-256): whoever publishes the accept (the intake, a duplicate delivery, the republisher) publishes
 * the same event, which audit stores once.
 */
export function acceptEventId(depositId: string): string {
  const b = createHash('sha256').update(`webhooks:deposit.accept:${depositId}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** How long a recorded publish is still remembered by this process (see `publishing`). */
const FORGET_AFTER_MS = 1000;

export interface JobPublisher {
  /**
   * Publishes the job of a stored delivery, `deposit.received` (message id: the deposit id) and its
   * accept audit event, and resolves once the broker confirmed both. Then records that it did, in
   * batches and not awaited: a record lost (the process killed, the database down) only means the
   * republisher sends the messages again, which consumers dedupe. Throws what the broker's publish
   * throws (UNAVAILABLE; NOT_FOUND, FORBIDDEN or INTERNAL when the broker refused a message).
   */
  publish(claim: StoredClaim): Promise<void>;
  /** The same for many (the republisher), marking nothing: returns the deposit ids whose messages were both confirmed. */
  publishAll(claims: readonly StoredClaim[]): Promise<string[]>;
  /** Records what is confirmed and not yet recorded now (at stop). */
  flush(): void;
}

export function createJobPublisher(deps: { broker: Pick<Broker, 'publishEvent'>; store: Pick<DepositStore, 'markPublished'>; logger: Logger }): JobPublisher {
  const log = deps.logger.child({ component: 'deposit-jobs' });
  // This process's publishes by deposit id, from the first publish until a moment after its confirm is
  // recorded (a duplicate's statement may have read the row just before): a duplicate delivery
  // arriving meanwhile (a sender's retry, 50 at once) waits on that publish instead of sending the
  // messages again. Other replicas do not know of it and may send them once more, as may a duplicate
  // that read the new row before its creator got to publish: harmless, the consumers dedupe.
  const publishing = new Map<string, Promise<void>>();
  // Group commit of the records: one UPDATE for the confirms of a few milliseconds, off the 200's path.
  const marks = new Batcher<string>(500, 5, async (ids) => {
    try {
      await deps.store.markPublished(ids);
    } catch (err) {
      log.warn({ err, deposits: ids.length }, 'could not record published deposits; the republisher will send them again');
    } finally {
      setTimeout(() => {
        for (const id of ids) publishing.delete(id);
      }, FORGET_AFTER_MS).unref();
    }
  });
  const send = async (c: StoredClaim) => {
    const { depositId, chain, txHash, eventIndex, token, amount, toAddress, createdAt } = c;
    const audit = auditMessage(
      'webhooks',
      'deposit.accept',
      { resource: { type: 'deposit', id: depositId }, status: 'success', after: { chain, txHash, eventIndex, amount, toAddress } },
      { eventId: acceptEventId(depositId), occurredAt: createdAt },
    );
    await Promise.all([
      deps.broker.publishEvent('deposit.received', { depositId, chain, txHash, eventIndex, token, amount, toAddress }, { messageId: depositId }),
      deps.broker.publishEvent(audit.routingKey, audit.payload, { messageId: audit.messageId }),
    ]);
  };
  return {
    publish(claim) {
      const id = claim.depositId;
      let sent = publishing.get(id);
      if (!sent) {
        sent = send(claim);
        publishing.set(id, sent);
        sent.then(
          () => marks.add(id),
          () => publishing.delete(id),
        );
      }
      return sent;
    },
    async publishAll(claims) {
      const outcomes = await Promise.allSettled(claims.map(send));
      const failed = outcomes.find((o) => o.status === 'rejected');
      if (failed) log.warn({ err: failed.reason, failed: outcomes.filter((o) => o.status === 'rejected').length }, 'republish failed; tried again next sweep');
      return claims.filter((_, i) => outcomes[i]!.status === 'fulfilled').map((c) => c.depositId);
    },
    flush: () => marks.flushNow(),
  };
}
