import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { CommandHandlers } from '@wallet-fleet/messaging';
import type { DepositRow, DepositStore } from '../store/deposit-store.js';
import type { ReconcileStore } from '../store/reconcile-store.js';
import { type createCreditRecheck, type createDepositAttempt, type createReversalRecheck, RECONCILABLE } from './processing.js';

/**
 * The deposit operations reconciliation (or an operator) calls: `wallet.deposits.stuck`,
 * `wallet.deposits.reconcile`, `wallet.deposits.summary`. The deposit tables stay this service's
 * own; reconciliation decides when and how many, this service decides what a deposit's state is.
 */
export function createReconcileHandlers(
  stores: { deposits: DepositStore; reconcile: ReconcileStore },
  attempt: ReturnType<typeof createDepositAttempt>,
  rechecks: { credit: ReturnType<typeof createCreditRecheck>; reversal: ReturnType<typeof createReversalRecheck> },
): CommandHandlers {
  const { deposits, reconcile } = stores;

  /** One attempt by reconciliation at an open (or unlisted) deposit, answered as the operation's result. */
  async function settle(d: DepositRow, pastMaxAge: boolean, note?: string) {
    // Age never fails a confirming deposit: its transfer is on chain, only finality is awaited.
    const outcome = await attempt(d, { by: 'reconciliation', attempt: d.attempts.length + 1, failMissing: pastMaxAge, failUnconfirmed: pastMaxAge });
    // RPC down: nothing is known; the caller retries on its next pass (never failed for age alone).
    if (outcome.status === 'pending' && outcome.chainUnavailable) throw outcome.error;
    const reason = 'error' in outcome ? outcome.error.message : outcome.reason;
    const changed = outcome.status === 'pending' ? false : outcome.changed;
    const text = [note, reason].filter(Boolean).join(': ');
    return { depositId: d.depositId, status: outcome.status, changed, ...(text ? { reason: text } : {}) };
  }

  return {
    'wallet.deposits.stuck': (q) => reconcile.listStuck(q),
    'wallet.deposits.summary': () => reconcile.summary(),
    'wallet.deposits.reconcile': async (q) => {
      const age = await reconcile.depositAgeSeconds(q.depositId);
      let d = await deposits.get(q.depositId);
      if (!d) throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, 'no such deposit');
      if (d.status === 'rejected' && (await reconcile.reopenIfNowOurs(d.depositId))) d = (await deposits.get(q.depositId))!;
      // A credit stands while the chain still says so; its transaction gone (and confirmed gone) → reversed. RPC down → UNAVAILABLE.
      if (d.status === 'credited') return { depositId: d.depositId, ...(await rechecks.credit(d)) };
      // Reversed, and its transfer mined again: the claim is a new deposit, settled here (the answer names it).
      if (d.status === 'reversed') {
        const next = await rechecks.reversal(d);
        if (!next) return { depositId: d.depositId, status: d.status, changed: false };
        if (!RECONCILABLE.includes(next.status)) return { depositId: next.depositId, status: next.status, changed: false };
        return settle(next, false, `mined again after the reversal of deposit ${d.depositId}`);
      }
      // Unlisted: asked again, it is credited if its token has been listed since.
      if (!RECONCILABLE.includes(d.status)) return { depositId: d.depositId, status: d.status, changed: false };
      return settle(d, age > q.maxAgeSeconds);
    },
  };
}
