import { ErrorCode, FleetError, Headers, type ParsedPayloadOf, type Wallet, isFleetError } from '@wallet-fleet/contracts';
import type { Broker, HandlerContext, OutboxMessage } from '@wallet-fleet/messaging';
import { databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { ProvisioningMetrics } from '../metrics.js';
import { type CreateWallet, type OutboxWriter, idempotencyKeyOf } from '../ports.js';
import { inTransaction, provisioningStore } from '../store/provisioning-store.js';
import { auditMessage } from './audit.js';

export interface ChainJobDeps {
  pool: pg.Pool;
  outbox: OutboxWriter;
  createWallet: CreateWallet;
  /** To park a job while the breaker is open (raw publish to the queue's first delay queue). */
  broker: Pick<Broker, 'publish'>;
  metrics: ProvisioningMetrics;
  /** The chain jobs' work queue; `<queue>.retry.1` is its first delay queue (declared by the broker). */
  queue: string;
  maxAttempts: number;
  retryMaxDelayMs: number;
  stuckAfterMs: number;
  breakerWaitMs: number;
}

type Job = ParsedPayloadOf<'provisioning.chain.requested'>;

const toFleetError = (e: unknown): FleetError =>
  isFleetError(e) ? e : new FleetError(ErrorCode.INTERNAL, e instanceof Error ? e.message : String(e), { cause: e });

/** The breaker refused the call without trying it (open): the wallet service was not asked at all. */
const breakerRejected = (e: unknown) => (e as { cause?: { code?: unknown } })?.cause?.code === 'EOPENBREAKER';

/**
 * `provisioning.chain.requested`: ensures one wallet for one user and chain. Outcomes:
 * - READY (wallet created or found again through the idempotency key): state, audit event and, when
 *   it was the user's last chain, `wallet.provisioning.completed`, in one transaction;
 * - breaker open: the job is parked for `breakerWaitMs` with the same attempt number (an outage
 *   does not use up attempts; only calls that really reached out do);
 * - retryable failure before the last attempt: attempt recorded, rethrown → broker retry with backoff;
 * - permanent failure or last attempt: FAILED, `wallet.provisioning.failed`, alert metric, rethrown →
 *   dead letter.
 * Throws the wallet service's FleetError (VALIDATION_FAILED, IDEMPOTENCY_CONFLICT, UNAVAILABLE, TIMEOUT, ...),
 * or UNAVAILABLE/INTERNAL for our own database.
 */
export function createChainJobHandler(deps: ChainJobDeps) {
  const { pool, outbox, metrics } = deps;

  async function park(job: Job, ctx: HandlerContext): Promise<void> {
    // ±20 % so that jobs parked together do not all hit the half-open breaker at once.
    const delay = Math.max(1, Math.round(deps.breakerWaitMs * (0.8 + 0.4 * Math.random())));
    await deps.broker.publish('', `${deps.queue}.retry.1`, Buffer.from(JSON.stringify(job)), {
      expiration: String(delay),
      contentType: 'application/json',
      ...(ctx.messageId ? { messageId: ctx.messageId } : {}),
      ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
      // The job keeps its headers (the broker's error history among them) and its attempt number.
      headers: {
        ...Object.fromEntries(Object.entries(ctx.headers).filter(([k]) => !/^x-(first-|last-)?death/.test(k))),
        [Headers.attempt]: ctx.attempt,
        [Headers.originalRoutingKey]: ctx.routingKey,
        [Headers.traceparent]: ctx.traceparent,
      },
    });
    // Kept from the sweep while it waits.
    await provisioningStore.touch(pool, job.userId, job.chain, delay + deps.stuckAfterMs);
  }

  async function recordReady(job: Job, wallet: Wallet, ctx: HandlerContext): Promise<boolean> {
    return inTransaction(pool, async (client) => {
      const user = await provisioningStore.lockUser(client, job.userId);
      const row = await provisioningStore.get(client, job.userId, job.chain, true);
      if (!user || !row || row.status === 'READY') return false;
      await provisioningStore.markReady(client, job.userId, job.chain, wallet);
      const messages: OutboxMessage[] = [
        auditMessage('provisioning.chain', {
          resource: { type: 'provisioning', id: `${job.userId}:${job.chain}` },
          userId: job.userId,
          status: 'success',
          before: { status: row.status, attempts: row.attempts },
          after: { status: 'READY', attempts: row.attempts + 1, walletId: wallet.walletId, address: wallet.address },
          ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
        }),
      ];
      // The user's row is locked: of two chains finishing at once, the second one sees both READY.
      const rows = await provisioningStore.list(client, job.userId);
      const ready = new Map(rows.filter((r) => r.status === 'READY' || r.chain === job.chain).map((r) => [r.chain, r]));
      if (user.completedAt === null && user.chains.every((c) => ready.has(c))) {
        await provisioningStore.markCompleted(client, job.userId);
        messages.push({
          routingKey: 'wallet.provisioning.completed',
          messageId: `wallet.provisioning.completed:${job.userId}:${user.chains.join(',')}`,
          payload: {
            userId: job.userId,
            wallets: user.chains.map((c) =>
              c === job.chain
                ? { chain: c, walletId: wallet.walletId, address: wallet.address }
                : { chain: c, walletId: ready.get(c)!.walletId!, address: ready.get(c)!.address! },
            ),
          },
        });
      }
      await outbox.enqueue(client, messages);
      return true;
    });
  }

  /** Records the failed attempt; returns false when the row was no longer PENDING (a duplicate job finished it). */
  async function recordFailure(job: Job, err: FleetError, last: boolean, ctx: HandlerContext): Promise<boolean> {
    const error = { code: err.code, message: err.message };
    // Past the last retry the row must not look stuck before the broker could possibly have
    // redelivered it: the longest delay plus jitter, then the stuck threshold.
    const leaseMs = Math.ceil(deps.retryMaxDelayMs * 1.2) + deps.stuckAfterMs;
    return inTransaction(pool, async (client) => {
      const row = await provisioningStore.get(client, job.userId, job.chain, true);
      if (!row || row.status !== 'PENDING') return false;
      const status = last ? 'FAILED' : 'PENDING';
      const attempts = await provisioningStore.markFailedAttempt(client, job.userId, job.chain, status, error, leaseMs);
      const messages: OutboxMessage[] = [
        auditMessage('provisioning.chain', {
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
      await outbox.enqueue(client, messages);
      return true;
    });
  }

  return async (job: Job, ctx: HandlerContext): Promise<void> => {
    const end = metrics.duration.startTimer();
    metrics.active.inc();
    try {
      let row;
      try {
        row = await provisioningStore.get(pool, job.userId, job.chain);
        // A duplicate or stale job (the chain is READY, or FAILED and not re-triggered): nothing to do.
        if (!row || row.status !== 'PENDING') {
          metrics.processed.inc({ status: 'skipped' });
          return;
        }
        await provisioningStore.touch(pool, job.userId, job.chain, deps.stuckAfterMs);
      } catch (e) {
        throw databaseError(e);
      }

      let wallet: Wallet;
      try {
        wallet = await deps.createWallet({ userId: job.userId, chain: job.chain, idempotencyKey: idempotencyKeyOf(job.userId, job.chain) });
      } catch (e) {
        const err = toFleetError(e);
        metrics.errors.inc({ type: breakerRejected(e) ? 'BREAKER_OPEN' : err.code });
        if (breakerRejected(e) && deps.maxAttempts > 1) {
          try {
            await park(job, ctx);
          } catch (pe) {
            // Could not park it: let the broker retry it (this uses up an attempt, but loses nothing).
            ctx.logger.warn({ err: pe }, 'could not park the job; retrying through the broker');
            throw err;
          }
          metrics.processed.inc({ status: 'waiting' });
          ctx.logger.info({ userId: job.userId, chain: job.chain, attempt: ctx.attempt }, 'wallet service breaker open; job parked');
          return;
        }
        const last = !err.retryable || ctx.attempt >= deps.maxAttempts;
        let recorded: boolean;
        try {
          recorded = await recordFailure(job, err, last, ctx);
        } catch (de) {
          throw databaseError(de);
        }
        if (!recorded) {
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

      try {
        if (await recordReady(job, wallet, ctx)) {
          metrics.processed.inc({ status: 'ready' });
          metrics.walletsCreated.inc({ chain: job.chain });
        } else {
          metrics.processed.inc({ status: 'skipped' });
        }
      } catch (e) {
        // The wallet exists; the retry finds it again through the idempotency key.
        throw databaseError(e);
      }
    } finally {
      metrics.active.dec();
      end();
    }
  };
}
