import { ErrorCode, FleetError, type ParsedPayloadOf, type Wallet, auditMessage, isFleetError } from '@wallet-fleet/contracts';
import { type HandlerContext, type OutboxMessage, defer } from '@wallet-fleet/messaging';
import { isBreakerOpen } from '@wallet-fleet/service-kit';
import type { ProvisioningMetrics } from '../metrics.js';
import { type CreateWallet, idempotencyKeyOf } from '../ports.js';
import type { ChainState, ProvisioningStore } from '../store/provisioning-store.js';

export interface ChainJobDeps {
  store: ProvisioningStore;
  createWallet: CreateWallet;
  metrics: ProvisioningMetrics;
  maxAttempts: number;
  retryMaxDelayMs: number;
  stuckAfterMs: number;
  breakerWaitMs: number;
}

type Job = ParsedPayloadOf<'provisioning.chain.requested'>;

const toFleetError = (e: unknown): FleetError =>
  isFleetError(e) ? e : new FleetError(ErrorCode.INTERNAL, e instanceof Error ? e.message : String(e), { cause: e });

/** Spread of a deferral, so that jobs parked together do not all hit the half-open breaker at once. */
const DEFER_JITTER = 0.2;

/**
 * `provisioning.chain.requested`: ensures one wallet for one user and chain. Outcomes:
 * - READY (wallet created or found again through the idempotency key): state, audit event and, when
 *   it was the user's last chain, `wallet.provisioning.completed`, in one transaction;
 * - breaker open: deferred by `breakerWaitMs` (±20 %) without using an attempt (an outage does
 *   not use up attempts; only calls that really reached out do);
 * - retryable failure before the last attempt: attempt recorded, rethrown → broker retry with backoff;
 * - permanent failure or last attempt: FAILED, `wallet.provisioning.failed`, alert metric, rethrown →
 *   dead letter.
 * Throws the wallet service's FleetError (VALIDATION_FAILED, IDEMPOTENCY_CONFLICT, UNAVAILABLE, TIMEOUT, ...),
 * UNAVAILABLE/INTERNAL for our own database, or a Deferral.
 */
export function createChainJobHandler(deps: ChainJobDeps) {
  const { store, metrics } = deps;

  /**
   * Enqueues `wallet.provisioning.completed` once every chain of the user is READY, and marks the
   * user completed with it. Runs after the caller's READY committed, so of the user's chains the
   * one committed last always sees them all READY here; two that both do race on the user row's
   * lock and only the first completes (`store.complete`). A job redelivered after a crash between
   * its READY and this check comes here again (its chain is READY, see the handler).
   */
  async function completeIfReady(userId: string): Promise<void> {
    const state = await store.completion(userId);
    if (!state || state.completedAt !== null) return;
    const ready = new Map(state.rows.filter((r) => r.status === 'READY').map((r) => [r.chain, r]));
    if (!state.chains.every((c) => ready.has(c))) return;
    await store.complete(userId, state.chains, [
      {
        routingKey: 'wallet.provisioning.completed',
        messageId: `wallet.provisioning.completed:${userId}:${state.chains.join(',')}`,
        payload: { userId, wallets: state.chains.map((c) => ({ chain: c, walletId: ready.get(c)!.walletId!, address: ready.get(c)!.address! })) },
      },
    ]);
  }

  /**
   * Marks the chain READY with its audit event (one statement, no lock held across round trips),
   * then checks the user's completion. `seen` is the row as the job found it; when another job
   * changed it meanwhile (a duplicate recorded a failure) the row is read again and marked from
   * there. Returns false when the chain was READY already.
   */
  async function recordReady(job: Job, wallet: Wallet, seen: ChainState, ctx: HandlerContext): Promise<boolean> {
    let row: ChainState | undefined = seen;
    for (;;) {
      if (!row || row.status === 'READY') {
        await completeIfReady(job.userId);
        return false;
      }
      const audit = auditMessage('provisioning', 'provisioning.chain', {
        resource: { type: 'provisioning', id: `${job.userId}:${job.chain}` },
        userId: job.userId,
        status: 'success',
        before: { status: row.status, attempts: row.attempts },
        after: { status: 'READY', attempts: row.attempts + 1, walletId: wallet.walletId, address: wallet.address },
        ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
      });
      if (await store.markReady(job.userId, job.chain, row, wallet, [audit])) break;
      row = await store.get(job.userId, job.chain);
    }
    await completeIfReady(job.userId);
    return true;
  }

  /** Records the failed attempt; returns false when the row was no longer PENDING (a duplicate job finished it). */
  async function recordFailure(job: Job, err: FleetError, last: boolean, ctx: HandlerContext): Promise<boolean> {
    const error = { code: err.code, message: err.message };
    // Past the last retry the row must not look stuck before the broker could possibly have
    // redelivered it: the longest delay plus jitter, then the stuck threshold.
    const leaseMs = Math.ceil(deps.retryMaxDelayMs * 1.2) + deps.stuckAfterMs;
    return store.transaction(async (tx) => {
      const row = await tx.get(job.userId, job.chain, true);
      if (!row || row.status !== 'PENDING') return false;
      const status = last ? 'FAILED' : 'PENDING';
      const attempts = await tx.markFailedAttempt(job.userId, job.chain, status, error, leaseMs);
      const messages: OutboxMessage[] = [
        auditMessage('provisioning', 'provisioning.chain', {
          resource: { type: 'provisioning', id: `${job.userId}:${job.chain}` },
          userId: job.userId,
          status: !last ? 'retry_scheduled' : err.retryable ? 'dead_lettered' : 'failed',
          before: { status: row.status, attempts: row.attempts },
          after: { status, attempts },
          error: { ...error, retryable: err.retryable },
          ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
        }),
      ];
      if (last) {
        messages.push({
          routingKey: 'wallet.provisioning.failed',
          payload: { userId: job.userId, chain: job.chain, attempts, error },
        });
      }
      await tx.enqueue(messages);
      return true;
    });
  }

  return async (job: Job, ctx: HandlerContext): Promise<void> => {
    const end = metrics.duration.startTimer();
    metrics.active.inc();
    try {
      const row = await store.claim(job.userId, job.chain, deps.stuckAfterMs);
      // A duplicate or stale job (the chain is READY, or FAILED and not re-triggered): nothing to
      // create. A READY chain may be one whose job crashed before the completion check: check again.
      if (!row) {
        await completeIfReady(job.userId);
        metrics.processed.inc({ status: 'skipped' });
        return;
      }

      let wallet: Wallet;
      try {
        wallet = await deps.createWallet({ userId: job.userId, chain: job.chain, idempotencyKey: idempotencyKeyOf(job.userId, job.chain) });
      } catch (e) {
        const err = toFleetError(e);
        metrics.errors.inc({ type: isBreakerOpen(e) ? 'BREAKER_OPEN' : err.code });
        // With no retries at all there is no later to defer to: the failure is recorded as it is.
        if (isBreakerOpen(e) && deps.maxAttempts > 1) {
          // Kept from the sweep while it waits: the longest deferral, then the stuck threshold.
          await store.touch(job.userId, job.chain, Math.ceil(deps.breakerWaitMs * (1 + DEFER_JITTER)) + deps.stuckAfterMs);
          metrics.processed.inc({ status: 'waiting' });
          ctx.logger.info({ userId: job.userId, chain: job.chain, attempt: ctx.attempt }, 'wallet service breaker open; job deferred');
          throw defer(err, { delayMs: deps.breakerWaitMs, jitter: DEFER_JITTER });
        }
        const last = !err.retryable || ctx.attempt >= deps.maxAttempts;
        if (!(await recordFailure(job, err, last, ctx))) {
          metrics.processed.inc({ status: 'skipped' });
          return;
        }
        if (last) {
          metrics.processed.inc({ status: 'failed' });
          metrics.deadLettered.inc({ chain: job.chain });
        } else {
          metrics.processed.inc({ status: 'retry' });
          metrics.retries.inc();
        }
        ctx.logger.warn({ userId: job.userId, chain: job.chain, attempt: ctx.attempt, code: err.code, last }, 'wallet creation failed');
        throw err;
      }

      // A database failure here is retried: the wallet exists, the retry finds it again through the idempotency key.
      if (await recordReady(job, wallet, row, ctx)) {
        metrics.processed.inc({ status: 'ready' });
        metrics.walletsCreated.inc({ chain: job.chain });
      } else {
        metrics.processed.inc({ status: 'skipped' });
      }
    } finally {
      metrics.active.dec();
      end();
    }
  };
}
