import type { Intent } from '@wallet-fleet/chains';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { PolicyStore } from '../store/policy-store.js';
import { type ApprovalNeed, type Denial, evaluate } from './engine.js';

/** What the audit trail keeps of a policy decision. */
export interface PolicyDecision {
  allowed: boolean;
  denial?: Denial;
  /** Not allowed yet: approvers must approve first (nothing reserved). */
  approval?: ApprovalNeed;
  /** Per asset, what the transaction may move, fees included (base units). */
  spend: Record<string, string>;
}

export type PolicyGate = ReturnType<typeof createPolicyGate>;

/** Decisions taken again, at most, when policies change under one (then UNAVAILABLE, retryable). */
const ATTEMPTS = 3;

/**
 * The policy between a decoded transaction and the key: the rules of the fleet, the user and the
 * wallet (engine.ts, on rules kept in memory), then the rolling caps, reserved atomically under
 * `ref`. Every decision is checked against the current policy epoch in the database (the reservation
 * itself does it; a refusal asks), and taken again on fresh rules if a change came in between.
 */
export function createPolicyGate(store: Pick<PolicyStore, 'applicable' | 'reserve' | 'release' | 'isCurrent' | 'forget'>) {
  return {
    /**
     * Decides on `intent` for the wallet; when allowed, its spend is reserved under `ref` (release
     * it with `release(ref)` if the signing then fails). Above an approval threshold, and unless
     * `approved` (the execution of an approved request), the answer is `approval` once every other
     * rule, the rolling caps included, has passed (checked, not reserved). Never throws a denial:
     * the caller audits the decision and throws `policyDenied`. Throws UNAVAILABLE, INTERNAL (database).
     */
    async decide(owner: { userId: string; walletId: string }, intent: Intent, ref: string, opts: { approved?: boolean } = {}): Promise<PolicyDecision> {
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        const { epoch, policies } = await store.applicable(owner.userId, owner.walletId);
        const evaluation = evaluate(intent, policies);
        const spend = Object.fromEntries([...evaluation.spend].map(([asset, amount]) => [asset, amount.toString()]));
        if (!evaluation.allowed) {
          // An unsignable transaction is refused whatever the rules say; any other refusal stands
          // only if the rules it came from are still the current ones.
          if (evaluation.denial.rule === 'unsignable' || (await store.isCurrent(epoch))) return { allowed: false, denial: evaluation.denial, spend };
        } else {
          const waits = evaluation.approval !== undefined && !opts.approved;
          const denial = await store.reserve(epoch, ref, owner, evaluation.spend, evaluation.dailyCaps, { dryRun: waits });
          if (denial !== 'stale') {
            if (denial) return { allowed: false, denial, spend };
            return waits ? { allowed: false, approval: evaluation.approval, spend } : { allowed: true, spend };
          }
        }
        store.forget();
      }
      throw new FleetError(ErrorCode.UNAVAILABLE, 'signing policies kept changing during the decision; retry');
    },
    release: (ref: string) => store.release(ref),
  };
}

/** The POLICY_DENIED error of a denial: the rule (and its numbers) in `details`. */
export function policyDenied(denial: Denial): FleetError {
  return new FleetError(ErrorCode.POLICY_DENIED, `refused by policy (${denial.rule}): ${denial.message}`, { details: { ...denial } });
}
