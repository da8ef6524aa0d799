import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { CommandHandlers } from '@wallet-fleet/messaging';
import type { DepositStore } from '../store/deposit-store.js';
import type { ReconcileStore } from '../store/reconcile-store.js';
import { type createCreditRecheck, type createDepositAttempt, RECONCILABLE } from './processing.js';

/**
 * The deposit operations reconciliation (or an operator) calls: `wallet.deposits.stuck`,
 * `wallet.deposits.reconcile`, `wallet.deposits.summary`. The deposit tables stay this service's
 * own; reconciliation decides when and how many, this service decides what a deposit's state is.
 */
export function createReconcileHandlers(
  stores: { deposits: DepositStore; reconcile: ReconcileStore },
  attempt: ReturnType<typeof createDepositAttempt>,
  recheck: ReturnType<typeof createCreditRecheck>,
): CommandHandlers {
  const { deposits, reconcile } = stores;
  return {
    'wallet.deposits.stuck': (q) => reconcile.listStuck(q),
    'wallet.deposits.summary': () => reconcile.summary(),
    'wallet.deposits.reconcile': async (q) => {
      const age = await reconcile.depositAgeSeconds(q.depositId);
      let d = await deposits.get(q.depositId);
      if (!d) throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, 'no such deposit');
      if (d.status === 'rejected' && (await reconcile.reopenIfNowOurs(d.depositId))) d = (await deposits.get(q.depositId))!;
      // A credit stands while the chain still says so; its transaction gone → reversed. RPC down → UNAVAILABLE.
      if (d.status === 'credited') return { depositId: d.depositId, ...(await recheck(d)) };
      // Unlisted: asked again, it is credited if its token has been listed since.
      if (!RECONCILABLE.includes(d.status)) return { depositId: d.depositId, status: d.status, changed: false };
      const pastMaxAge = age > q.maxAgeSeconds;
      // Age never fails a confirming deposit: its transfer is on chain, only finality is awaited.
      const outcome = await attempt(d, { by: 'reconciliation', attempt: d.attempts.length + 1, failMissing: pastMaxAge, failUnconfirmed: pastMaxAge });
      // RPC down: nothing is known; the caller retries on its next pass (never failed for age alone).
      if (outcome.status === 'pending' && outcome.chainUnavailable) throw outcome.error;
      if (outcome.status === 'pending') return { depositId: d.depositId, status: 'pending', changed: false, reason: outcome.error.message };
      if (outcome.status === 'rejected' || outcome.status === 'confirming')
        return { depositId: d.depositId, status: outcome.status, changed: outcome.changed, reason: outcome.error.message };
      return { depositId: d.depositId, status: outcome.status, changed: outcome.changed, ...(outcome.reason ? { reason: outcome.reason } : {}) };
    },
  };
}
