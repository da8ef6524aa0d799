import { type Deposit, ErrorCode, FleetError, isFleetError, auditMessage } from '@wallet-fleet/contracts';
import type { HandlerContext, OutboxMessage } from '@wallet-fleet/messaging';
import type { ChainChecker } from '../chain-check.js';
import type { AttemptEntry, AttemptTx, DepositRow, DepositStatus, DepositStore } from '../store/deposit-store.js';

export interface ProcessingDeps {
  store: DepositStore;
  chains: ChainChecker;
  /** Attempts in all (the queue's retry policy): on the last one a missing transaction fails the deposit. */
  maxAttempts: number;
  /** Retry delays are this many times longer when the chain RPC itself failed (default 1). */
  rpcRetryDelayFactor?: number;
}

/** Who makes an attempt: the queue consumer (attempt n of the message) or reconciliation. */
export interface AttemptMode {
  by: 'consumer' | 'reconciliation';
  attempt: number;
  /** A transaction not found counts as failed (the consumer's last attempt; a deposit past its maximum age). */
  failMissing: boolean;
  /** A transaction not yet confirmed counts as failed (a deposit past its maximum age). */
  failUnconfirmed: boolean;
}

/**
 * What one attempt did. `changed`: this attempt moved the deposit out of `pending` (false when it
 * was already settled, e.g. by a concurrent consumer). `error`: why it is not settled (pending) or
 * why it was rejected; retryable for `pending`.
 */
export type AttemptOutcome =
  | { status: 'credited' | 'failed'; changed: boolean; reason?: string }
  | { status: 'rejected'; changed: boolean; error: FleetError }
  | { status: 'pending'; changed: false; error: FleetError; chainUnavailable: boolean };

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
 * One attempt at settling a pending deposit, shared by the queue consumer and by reconciliation
 * (`wallet.deposits.reconcile`), so that both credit through the same transaction:
 * - address not ours, token or hash impossible, Aptos → `rejected`;
 * - chain RPC down → stays `pending` (retryable UNAVAILABLE);
 * - not found / not yet confirmed → stays `pending`, unless `failMissing` / `failUnconfirmed`: then
 *   `failed` + `deposit.failed`;
 * - failed on chain, wrong amount or recipient → `failed` + `deposit.failed`;
 * - confirmed → a ledger entry (UNIQUE deposit_id: at most one) + `deposit.credited`, one transaction.
 * Every attempt appends to the row's attempt log and emits an audit event through the outbox, in
 * the transaction that changes the row, which re-reads it locked: a deposit settled meanwhile by
 * someone else is left alone (`changed: false`). Throws UNAVAILABLE (database).
 */
export function createDepositAttempt(deps: Omit<ProcessingDeps, 'maxAttempts'>) {
  const { store } = deps;

  /** Appends `entry` and sets `status` if the deposit is still pending; false when it was not. */
  async function record(
    d: DepositRow,
    mode: AttemptMode,
    entry: AttemptEntry,
    status: DepositStatus,
    extra: (tx: AttemptTx) => Promise<OutboxMessage[]> = async () => [],
  ): Promise<boolean> {
    return store.recordAttempt(d.depositId, entry, status, async (tx) => [
      ...(await extra(tx)),
      auditMessage('webhooks', mode.by === 'consumer' ? 'deposit.process' : 'deposit.reconcile', {
        resource: { type: 'deposit', id: d.depositId },
        status: entry.status === 'credited' ? 'success' : entry.status === 'retry' ? 'retry_scheduled' : 'failed',
        before: { status: 'pending' },
        after: { status, attempt: entry.attempt, by: mode.by },
        ...(entry.errorCode ? { error: { code: entry.errorCode, message: entry.message ?? '', retryable: entry.status === 'retry' } } : {}),
      }),
    ]);
  }

  return async function attempt(d: DepositRow, mode: AttemptMode): Promise<AttemptOutcome> {
    const at = () => new Date().toISOString();
    const by = mode.by === 'reconciliation' ? { by: 'reconciliation' as const } : {};
    const stay = async (error: FleetError, chainUnavailable: boolean): Promise<AttemptOutcome> => {
      await record(d, mode, { attempt: mode.attempt, status: 'retry', errorCode: error.code, message: error.message, at: at(), ...by }, 'pending');
      return { status: 'pending', changed: false, error, chainUnavailable };
    };
    const reject = async (error: FleetError): Promise<AttemptOutcome> => {
      const changed = await record(
        d,
        mode,
        { attempt: mode.attempt, status: 'rejected', errorCode: error.code, message: error.message, at: at(), ...by },
        'rejected',
      );
      return { status: 'rejected', changed, error };
    };

    const wallet = await store.findWallet(d.chain, d.toAddress);
    if (!wallet) return reject(FleetError.nonRetryable(ErrorCode.WALLET_NOT_FOUND, 'the address is not a wallet of ours'));

    let verdict;
    try {
      verdict = await deps.chains.check(d);
    } catch (e) {
      const err = isFleetError(e) ? e : new FleetError(ErrorCode.UNAVAILABLE, 'chain check failed', { retryable: true, cause: e });
      return err.retryable ? stay(err, true) : reject(err);
    }

    if ((verdict.kind === 'pending' && !mode.failUnconfirmed) || (verdict.kind === 'not_found' && !mode.failMissing)) {
      return verdict.kind === 'pending'
        ? stay(FleetError.retryable(ErrorCode.UNAVAILABLE, `not yet confirmed: ${verdict.reason}`), false)
        : // The sender's node may be ahead of ours; a later attempt decides.
          stay(FleetError.retryable(ErrorCode.NOT_FOUND, 'transaction not found on chain yet'), false);
    }
    if (verdict.kind !== 'confirmed') {
      const reason =
        verdict.kind === 'failed' ? verdict.reason : verdict.kind === 'not_found' ? 'transaction not found on chain' : `still not confirmed: ${verdict.reason}`;
      const changed = await record(
        d,
        mode,
        { attempt: mode.attempt, status: 'failed', errorCode: ErrorCode.NOT_FOUND, message: reason, at: at(), ...by },
        'failed',
        async () => [{ routingKey: 'deposit.failed', messageId: `failed:${d.depositId}`, payload: { ...depositPayload(d, wallet), reason } }],
      );
      return { status: 'failed', changed, reason };
    }
    const changed = await record(
      d,
      mode,
      { attempt: mode.attempt, status: 'credited', ...(verdict.note ? { message: verdict.note } : {}), at: at(), ...by },
      'credited',
      async (tx) => {
        const entryId = await tx.insertCredit(d, wallet);
        if (!entryId) return [];
        return [{ routingKey: 'deposit.credited', messageId: `credited:${d.depositId}`, payload: { ...depositPayload(d, wallet), ledgerEntryId: entryId } }];
      },
    );
    return { status: 'credited', changed };
  };
}

/**
 * The `deposit.received` handler: one attempt at crediting a deposit (see createDepositAttempt).
 * Already settled → nothing (a redelivery). Rejected → throws non-retryable (DLQ at once). Still
 * pending → throws retryable UNAVAILABLE / NOT_FOUND (broker backoff, then the DLQ; the row stays
 * pending for reconciliation); on the last attempt a transaction still missing fails the deposit.
 */
export function createDepositHandler(deps: ProcessingDeps) {
  const attempt = createDepositAttempt(deps);
  return async (input: Deposit, ctx: HandlerContext): Promise<void> => {
    const d = await deps.store.get(input.depositId);
    // A message without its row cannot be processed by anyone: it is not ours.
    if (!d) throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, 'no such deposit');
    if (d.status !== 'pending') return;
    const outcome = await attempt(d, { by: 'consumer', attempt: ctx.attempt, failMissing: ctx.attempt >= deps.maxAttempts, failUnconfirmed: false });
    if (outcome.status === 'pending' && outcome.chainUnavailable && deps.rpcRetryDelayFactor) {
      // The node (or its breaker) is down: back off longer than for a transaction not yet confirmed.
      const e = outcome.error;
      throw new FleetError(e.code, e.message, {
        retryable: true,
        retryDelayFactor: deps.rpcRetryDelayFactor,
        cause: e,
        ...(e.details ? { details: e.details } : {}),
      });
    }
    if (outcome.status === 'pending' || outcome.status === 'rejected') throw outcome.error;
  };
}
