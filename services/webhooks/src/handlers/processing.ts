import { type Deposit, ErrorCode, FleetError, isFleetError } from '@wallet-fleet/contracts';
import type { HandlerContext, Outbox, OutboxMessage } from '@wallet-fleet/messaging';
import type pg from 'pg';
import type { ChainChecker } from '../chain-check.js';
import {
  type AttemptEntry,
  type DepositRow,
  type DepositStatus,
  findWallet,
  getDeposit,
  inTransaction,
  insertCredit,
  recordAttempt,
} from '../store/deposit-store.js';
import { auditMessage } from './audit.js';

export interface ProcessingDeps {
  pool: pg.Pool;
  outbox: Outbox;
  chains: ChainChecker;
  /** Attempts in all (the queue's retry policy): on the last one a missing transaction fails the deposit. */
  maxAttempts: number;
}

const depositPayload = (d: DepositRow, wallet?: { walletId: string; userId: string }): Deposit => ({
  depositId: d.depositId,
  chain: d.chain,
  txHash: d.txHash,
  eventIndex: d.eventIndex,
  token: d.token,
  amount: d.amount,
  toAddress: d.toAddress,
  ...(wallet ? { walletId: wallet.walletId, userId: wallet.userId } : {}),
});

/**
 * The `deposit.received` handler: one attempt at crediting a deposit.
 * - already credited/failed/rejected → nothing (a redelivery);
 * - address not ours, token or hash impossible, Aptos → `rejected`, throws non-retryable (DLQ at once);
 * - chain RPC down, not yet confirmed, not yet found → throws retryable UNAVAILABLE (broker backoff);
 * - not found on the last attempt, or failed on chain → `failed` + `deposit.failed`;
 * - confirmed → a ledger entry (UNIQUE deposit_id: at most one) + `deposit.credited`, one transaction.
 * Every attempt appends to the row's attempt log and emits an audit event through the outbox.
 */
export function createDepositHandler(deps: ProcessingDeps) {
  const { pool, outbox } = deps;

  async function finish(
    d: DepositRow,
    entry: AttemptEntry,
    status: DepositStatus,
    extra: (client: pg.PoolClient) => Promise<OutboxMessage[]> = async () => [],
  ): Promise<void> {
    await inTransaction(pool, async (client) => {
      // Locked and re-read: a concurrent consumer of a duplicate delivery may have finished first.
      const current = await getDeposit(client, d.depositId, true);
      if (!current || current.status !== 'pending') return;
      await recordAttempt(client, d.depositId, entry, status);
      const messages = await extra(client);
      await outbox.enqueue(client, [
        ...messages,
        auditMessage('deposit.process', {
          resource: { type: 'deposit', id: d.depositId },
          status: entry.status === 'credited' ? 'success' : entry.status === 'retry' ? 'retry_scheduled' : 'failed',
          after: { status, attempt: entry.attempt },
          ...(entry.errorCode ? { error: { code: entry.errorCode, message: entry.message ?? '', retryable: entry.status === 'retry' } } : {}),
        }),
      ]);
    });
  }

  return async (input: Deposit, ctx: HandlerContext): Promise<void> => {
    const d = await getDeposit(pool, input.depositId);
    // A message without its row cannot be processed by anyone: it is not ours.
    if (!d) throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, 'no such deposit');
    if (d.status !== 'pending') return;
    const at = () => new Date().toISOString();
    const fail = async (e: FleetError, status: DepositStatus): Promise<never> => {
      await finish(d, { attempt: ctx.attempt, status: status === 'pending' ? 'retry' : 'rejected', errorCode: e.code, message: e.message, at: at() }, status);
      throw e;
    };

    const wallet = await findWallet(pool, d.chain, d.toAddress);
    if (!wallet) return fail(FleetError.nonRetryable(ErrorCode.WALLET_NOT_FOUND, 'the address is not a wallet of ours'), 'rejected');

    let verdict;
    try {
      verdict = await deps.chains.check(d);
    } catch (e) {
      const err = isFleetError(e) ? e : new FleetError(ErrorCode.UNAVAILABLE, 'chain check failed', { retryable: true, cause: e });
      return fail(err, err.retryable ? 'pending' : 'rejected');
    }

    if (verdict.kind === 'pending') {
      return fail(FleetError.retryable(ErrorCode.UNAVAILABLE, `not yet confirmed: ${verdict.reason}`), 'pending');
    }
    if (verdict.kind === 'not_found' && ctx.attempt < deps.maxAttempts) {
      // The sender's node may be ahead of ours; the last attempt decides.
      return fail(FleetError.retryable(ErrorCode.NOT_FOUND, 'transaction not found on chain yet'), 'pending');
    }
    if (verdict.kind === 'not_found' || verdict.kind === 'failed') {
      const reason = verdict.kind === 'failed' ? verdict.reason : 'transaction not found on chain';
      await finish(d, { attempt: ctx.attempt, status: 'failed', errorCode: ErrorCode.NOT_FOUND, message: reason, at: at() }, 'failed', async () => [
        { routingKey: 'deposit.failed', messageId: `failed:${d.depositId}`, payload: { ...depositPayload(d, wallet), reason } },
      ]);
      return;
    }
    await finish(
      d,
      { attempt: ctx.attempt, status: 'credited', ...(verdict.note ? { message: verdict.note } : {}), at: at() },
      'credited',
      async (client) => {
        const entryId = await insertCredit(client, d, wallet);
        if (!entryId) return [];
        return [{ routingKey: 'deposit.credited', messageId: `credited:${d.depositId}`, payload: { ...depositPayload(d, wallet), ledgerEntryId: entryId } }];
      },
    );
  };
}
