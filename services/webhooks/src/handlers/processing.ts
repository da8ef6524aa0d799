import { type Deposit, type DepositStatus, ErrorCode, FleetError, isFleetError, auditMessage } from '@wallet-fleet/contracts';
import type { HandlerContext, OutboxMessage } from '@wallet-fleet/messaging';
import type { ChainChecker, ClaimVerdict } from '../chain-check.js';
import type { AttemptEntry, AttemptTx, ChainIdentity, DepositRow, DepositStore, Settlement } from '../store/deposit-store.js';

export interface ProcessingDeps {
  store: DepositStore;
  chains: ChainChecker;
  /** Attempts in all (the queue's retry policy): on the last one a missing transaction fails the deposit. */
  maxAttempts: number;
  /** Retry delays are this many times longer when the chain RPC itself failed (default 1). */
  rpcRetryDelayFactor?: number;
  /**
   * Tokens credited, as `ETH:<contract lower-case>` / `SOL:<mint>`; native coins always are. A final
   * transfer of another token is recorded `unlisted`, not credited.
   */
  tokenAllowlist: ReadonlySet<string>;
  /** Told of every reversal (the alert metric). */
  onReversed?(chain: DepositRow['chain']): void;
}

/** Who makes an attempt: the queue consumer (attempt n of the message) or reconciliation. */
export interface AttemptMode {
  by: 'consumer' | 'reconciliation';
  attempt: number;
  /** A transaction not found counts as failed (the consumer's last attempt; a deposit past its maximum age). */
  failMissing: boolean;
  /** A transaction not yet mined (or only processed) counts as failed (a deposit past its maximum age). */
  failUnconfirmed: boolean;
}

/**
 * What one attempt did. `changed`: this attempt changed the deposit's status (false when it was
 * already settled, e.g. by a concurrent consumer). `error`: why it is not settled (pending,
 * confirming) or why it was rejected; retryable for `pending` and `confirming`.
 */
export type AttemptOutcome =
  | { status: 'credited' | 'failed' | 'unlisted' | 'reversed'; changed: boolean; reason?: string }
  | { status: 'confirming'; changed: boolean; error: FleetError }
  | { status: 'rejected'; changed: boolean; error: FleetError }
  | { status: 'pending'; changed: false; error: FleetError; chainUnavailable: boolean };

/** Statuses an attempt may move a deposit out of. */
const OPEN: readonly DepositStatus[] = ['pending', 'confirming'];
/** What reconciliation may still settle: the open deposits, and unlisted ones (their token may be listed since). */
export const RECONCILABLE: readonly DepositStatus[] = [...OPEN, 'unlisted'];

const depositPayload = (d: DepositRow, wallet?: { walletId: string; userId: string }, identity?: ChainIdentity): Deposit => ({
  depositId: d.depositId,
  chain: d.chain,
  txHash: d.txHash,
  eventIndex: d.eventIndex,
  token: d.token,
  amount: d.amount,
  toAddress: d.toAddress,
  ...(wallet ? { walletId: wallet.walletId, userId: wallet.userId } : {}),
  ...(identity ? { asset: identity.asset, decimals: identity.decimals, creditKey: identity.creditKey } : {}),
});

const NATIVE_DECIMALS = { SOL: 9, ETH: 18, APTOS: 8 } as const;

/** The transfer's asset as the allow-list and the ledger name it, with its decimals from the chain. */
function identityOf(verdict: Extract<ClaimVerdict, { kind: 'final' | 'confirming' }>, chain: DepositRow['chain']): ChainIdentity {
  const a = verdict.transfer.asset;
  return a.kind === 'native'
    ? { creditKey: verdict.creditKey, asset: 'native', decimals: NATIVE_DECIMALS[chain] }
    : { creditKey: verdict.creditKey, asset: a.kind === 'erc20' ? a.contract : a.mint, decimals: a.decimals };
}

/**
 * One attempt at settling an open (pending or confirming) deposit, shared by the queue consumer and
 * by reconciliation (`wallet.deposits.reconcile`), so that both credit through the same transaction.
 * The claim (token, amount, toAddress at its eventIndex) is weighed against the transfer at that
 * on-chain identity (`ChainChecker`):
 * - address not ours, hash impossible, Aptos → `rejected`;
 * - chain RPC down → stays (retryable UNAVAILABLE);
 * - not found / not yet mined → `pending`, unless `failMissing` / `failUnconfirmed`: then `failed`;
 * - not what the chain says at that identity (another amount, token or payee, nothing there, failed
 *   on chain) → `failed` + `deposit.failed` with the reason: the claim fails, not the transfer, so a
 *   true claim for it is still credited;
 * - matching, not final → `confirming` (retryable: asked again later);
 * - matching and final: a token not in the allow-list → `unlisted`; else a ledger credit under the
 *   transfer's credit key (unique: a transfer already credited through another claim fails this
 *   one) + `deposit.credited`, one transaction.
 * Every attempt appends to the row's attempt log and emits an audit event through the outbox, in
 * the transaction that changes the row, which re-reads it locked: a deposit settled meanwhile by
 * someone else is left alone (`changed: false`). Throws UNAVAILABLE (database).
 */
export function createDepositAttempt(deps: Omit<ProcessingDeps, 'maxAttempts'>) {
  const { store } = deps;

  const audit = (d: DepositRow, mode: AttemptMode, before: DepositStatus, status: DepositStatus, entry: AttemptEntry): OutboxMessage =>
    auditMessage('webhooks', mode.by === 'consumer' ? 'deposit.process' : 'deposit.reconcile', {
      resource: { type: 'deposit', id: d.depositId },
      status: status === 'credited' ? 'success' : entry.status === 'retry' || status === 'confirming' ? 'retry_scheduled' : 'failed',
      before: { status: before },
      after: { status, attempt: entry.attempt, by: mode.by },
      ...(entry.errorCode ? { error: { code: entry.errorCode, message: entry.message ?? '', retryable: entry.status === 'retry' } } : {}),
    });

  /** Settles `d` if still open: `decide` picks the status, entry and messages, with the row locked. */
  async function settle(
    d: DepositRow,
    mode: AttemptMode,
    decide: (tx: AttemptTx, current: DepositRow) => Promise<Omit<Settlement, 'messages'> & { messages?: OutboxMessage[] }>,
  ): Promise<{ settled: Settlement; before: DepositStatus } | undefined> {
    let before: DepositStatus = d.status;
    // Reconciliation may also take an unlisted deposit up again (its token listed since).
    const from = mode.by === 'reconciliation' ? RECONCILABLE : OPEN;
    const settled = await store.settle(d.depositId, from, async (tx, current) => {
      before = current.status;
      const s = await decide(tx, current);
      return { ...s, messages: [...(s.messages ?? []), audit(d, mode, current.status, s.status, s.entry)] };
    });
    return settled ? { settled, before } : undefined;
  }

  return async function attempt(d: DepositRow, mode: AttemptMode): Promise<AttemptOutcome> {
    const at = () => new Date().toISOString();
    const by = mode.by === 'reconciliation' ? { by: 'reconciliation' as const } : {};
    const stay = async (error: FleetError, chainUnavailable: boolean): Promise<AttemptOutcome> => {
      // An RPC failure says nothing new about the deposit: a confirming one stays confirming. A
      // transaction not found or not mined (again: a reorganisation) is pending.
      // The status as it is now, under the row's lock: another attempt may have moved it since `d` was read.
      await settle(d, mode, async (_tx, current) => ({
        status: chainUnavailable ? current.status : 'pending',
        entry: { attempt: mode.attempt, status: 'retry', errorCode: error.code, message: error.message, at: at(), ...by },
      }));
      return { status: 'pending', changed: false, error, chainUnavailable };
    };
    const reject = async (error: FleetError): Promise<AttemptOutcome> => {
      const r = await settle(d, mode, async () => ({
        status: 'rejected',
        entry: { attempt: mode.attempt, status: 'rejected', errorCode: error.code, message: error.message, at: at(), ...by },
      }));
      return { status: 'rejected', changed: r !== undefined, error };
    };

    const wallet = await store.findWallet(d.chain, d.toAddress);
    if (!wallet) return reject(FleetError.nonRetryable(ErrorCode.WALLET_NOT_FOUND, 'the address is not a wallet of ours'));

    let verdict: ClaimVerdict;
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
    const fail = async (reason: string, errorCode: string = ErrorCode.NOT_FOUND): Promise<AttemptOutcome> => {
      const r = await settle(d, mode, async () => ({
        status: 'failed',
        entry: { attempt: mode.attempt, status: 'failed', errorCode, message: reason, at: at(), ...by },
        messages: [{ routingKey: 'deposit.failed', messageId: `failed:${d.depositId}`, payload: { ...depositPayload(d, wallet), reason } }],
      }));
      return { status: 'failed', changed: r !== undefined, reason };
    };
    switch (verdict.kind) {
      case 'not_found':
        return fail('transaction not found on chain');
      case 'pending':
        return fail(`still not confirmed: ${verdict.reason}`);
      case 'mismatch':
        return fail(verdict.reason, ErrorCode.VALIDATION_FAILED);
      case 'confirming': {
        const identity = identityOf(verdict, d.chain);
        const error = FleetError.retryable(ErrorCode.UNAVAILABLE, verdict.reason);
        const r = await settle(d, mode, async () => ({
          status: 'confirming',
          identity,
          entry: { attempt: mode.attempt, status: 'confirming', message: verdict.reason, at: at(), ...by },
        }));
        return { status: 'confirming', changed: r !== undefined && r.before !== 'confirming', error };
      }
      case 'final':
        break;
    }
    const identity = identityOf(verdict, d.chain);
    if (identity.asset !== 'native' && !deps.tokenAllowlist.has(`${d.chain}:${d.chain === 'ETH' ? identity.asset.toLowerCase() : identity.asset}`)) {
      const reason = `token ${identity.asset} is not in the allow-list (DEPOSIT_TOKEN_ALLOWLIST): recorded, not credited`;
      const r = await settle(d, mode, async () => ({
        status: 'unlisted',
        identity,
        entry: { attempt: mode.attempt, status: 'unlisted', message: reason, at: at(), ...by },
      }));
      return { status: 'unlisted', changed: r !== undefined && r.before !== 'unlisted', reason };
    }
    let heldBy: string | undefined;
    const r = await settle(d, mode, async (tx) => {
      const credit = await tx.insertCredit(d, wallet, identity);
      if ('heldBy' in credit) {
        heldBy = credit.heldBy;
        const reason = `the transfer ${identity.creditKey} is already credited (deposit ${credit.heldBy})`;
        return {
          status: 'failed',
          identity,
          entry: { attempt: mode.attempt, status: 'failed', errorCode: ErrorCode.IDEMPOTENCY_CONFLICT, message: reason, at: at(), ...by },
          messages: [{ routingKey: 'deposit.failed', messageId: `failed:${d.depositId}`, payload: { ...depositPayload(d, wallet, identity), reason } }],
        };
      }
      return {
        status: 'credited',
        identity,
        entry: { attempt: mode.attempt, status: 'credited', at: at(), ...by },
        messages: [
          {
            routingKey: 'deposit.credited',
            messageId: `credited:${d.depositId}`,
            payload: { ...depositPayload(d, wallet, identity), ledgerEntryId: credit.entryId },
          },
        ],
      };
    });
    if (heldBy !== undefined) return { status: 'failed', changed: r !== undefined, reason: `already credited (deposit ${heldBy})` };
    return { status: 'credited', changed: r !== undefined };
  };
}

/** A re-check of a credit that did not find its transfer (attempt log entry `checked` with an error code). */
const isMiss = (e: AttemptEntry | undefined): e is AttemptEntry => e?.status === 'checked' && e.errorCode !== undefined;

/**
 * Checks a credited deposit on chain again. While the chain says `final` (or `confirming`) at its
 * identity the credit stands (nothing is written, unless a miss was recorded: then a `checked` entry
 * says it is on chain again). Any other answer (not found, no longer mined in the canonical chain,
 * another transfer there) is a miss, and one node's single answer is not enough to take money back:
 * - a credit made at the chain's own finality (Solana `finalized`, EVM_FINALITY=finalized) is never
 *   reversed here: the chain cannot reorganise it away, so a miss says the node is wrong (recorded as
 *   a `checked` entry and answered with the reason, for an operator);
 * - a credit made at N confirmations is reversed only when a re-check at least `reverseAfterMs` after
 *   the first recorded miss misses too (two answers, apart in time, possibly from other nodes behind
 *   the RPC URL): then `reversed` with a compensating ledger entry, `deposit.reversed`, an audit event
 *   (`deposit.reverse`) and `onReversed`, in one transaction.
 * Throws UNAVAILABLE (chain RPC or database).
 */
export function createCreditRecheck(deps: Pick<ProcessingDeps, 'store' | 'chains' | 'onReversed'> & { reverseAfterMs: number }) {
  const checked = (d: DepositRow, message: string, errorCode?: string) =>
    deps.store.settle(d.depositId, ['credited'], async () => ({
      status: 'credited',
      entry: {
        attempt: d.attempts.length + 1,
        status: 'checked',
        ...(errorCode ? { errorCode } : {}),
        message,
        at: new Date().toISOString(),
        by: 'reconciliation',
      },
      messages: [],
    }));

  return async function recheck(d: DepositRow): Promise<{ status: 'credited' | 'reversed'; changed: boolean; reason?: string }> {
    const verdict = await deps.chains.check(d);
    const last = d.attempts.at(-1);
    if (verdict.kind === 'final' || verdict.kind === 'confirming') {
      if (isMiss(last)) await checked(d, 'on chain again: the credit stands');
      return { status: 'credited', changed: false };
    }
    const missing =
      verdict.kind === 'not_found'
        ? 'the transaction is no longer on chain'
        : verdict.kind === 'pending'
          ? `the transaction is no longer in the canonical chain: ${verdict.reason}`
          : verdict.reason;
    if (deps.chains.atChainFinality(d.chain)) {
      const reason = `${missing}; credited at the chain's finality, so not reversed on a node's word: check the node`;
      if (!isMiss(last)) await checked(d, reason, ErrorCode.NOT_FOUND);
      return { status: 'credited', changed: false, reason };
    }
    const firstMiss = isMiss(last) ? Date.parse(last.at) : undefined;
    if (firstMiss === undefined || Date.now() - firstMiss < deps.reverseAfterMs) {
      const reason = `${missing}; reversed if a re-check ${Math.ceil(deps.reverseAfterMs / 1000)} s after the first miss agrees`;
      if (firstMiss === undefined) await checked(d, reason, ErrorCode.NOT_FOUND);
      return { status: 'credited', changed: false, reason };
    }
    const reason = missing;
    const wallet = await deps.store.findWallet(d.chain, d.toAddress);
    const settled = await deps.store.settle(d.depositId, ['credited'], async (tx) => {
      const entryId = await tx.insertReversal(d.depositId);
      const entry: AttemptEntry = {
        attempt: d.attempts.length + 1,
        status: 'reversed',
        errorCode: ErrorCode.NOT_FOUND,
        message: reason,
        at: new Date().toISOString(),
        by: 'reconciliation',
      };
      return {
        status: 'reversed',
        entry,
        messages: [
          ...(entryId
            ? [
                {
                  routingKey: 'deposit.reversed',
                  messageId: `reversed:${d.depositId}`,
                  payload: { ...depositPayload(d, wallet, d.identity), ledgerEntryId: entryId, reason },
                },
              ]
            : []),
          auditMessage('webhooks', 'deposit.reverse', {
            resource: { type: 'deposit', id: d.depositId },
            status: 'success',
            before: { status: 'credited' },
            after: { status: 'reversed', ...(entryId ? { ledgerEntryId: entryId } : {}), reason },
          }),
        ],
      };
    });
    if (settled) deps.onReversed?.(d.chain);
    return { status: settled ? 'reversed' : 'credited', changed: settled !== undefined, reason };
  };
}

/**
 * Checks a reversed deposit on chain again: when its transfer is there again (mined again after the
 * reorganisation), the same claim becomes a new deposit (the reversed one keeps its history), which
 * the caller then settles like any open deposit: its credit takes the transfer's next round. Returns
 * that deposit (or the one already open for the claim), or undefined while the transfer is not on
 * chain. Throws UNAVAILABLE (chain RPC or database).
 */
export function createReversalRecheck(deps: Pick<ProcessingDeps, 'store' | 'chains'>) {
  return async function minedAgain(d: DepositRow): Promise<DepositRow | undefined> {
    const verdict = await deps.chains.check(d);
    if (verdict.kind !== 'final' && verdict.kind !== 'confirming') return undefined;
    return deps.store.reopenReversed(d.depositId, {
      attempt: 0,
      status: 'retry',
      message: `mined again after the reversal of deposit ${d.depositId}: re-opened as a new deposit`,
      at: new Date().toISOString(),
      by: 'reconciliation',
    });
  };
}

/**
 * The `deposit.received` handler: one attempt at crediting a deposit (see createDepositAttempt).
 * Already settled → nothing (a redelivery). Rejected → throws non-retryable (DLQ at once). Still
 * pending or confirming → throws retryable UNAVAILABLE / NOT_FOUND (broker backoff, then the DLQ; the
 * row stays open for reconciliation, which lists confirming deposits too); on the last attempt a
 * transaction still missing fails the deposit.
 */
export function createDepositHandler(deps: ProcessingDeps) {
  const attempt = createDepositAttempt(deps);
  return async (input: Deposit, ctx: HandlerContext): Promise<void> => {
    const d = await deps.store.get(input.depositId);
    // A message without its row cannot be processed by anyone: it is not ours.
    if (!d) throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, 'no such deposit');
    if (!OPEN.includes(d.status)) return;
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
    if (outcome.status === 'pending' || outcome.status === 'rejected' || outcome.status === 'confirming') throw outcome.error;
  };
}
