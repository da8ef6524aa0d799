import { type ParsedRequestOf, auditMessage } from '@wallet-fleet/contracts';
import type { HandlerContext } from '@wallet-fleet/messaging';
import type { PolicyRecord, PolicyStore } from '../store/policy-store.js';

/**
 * `wallet.policy.get` / `wallet.policy.set` (callers `ops`). A change is written with its audit
 * event (before and after) in one transaction: no change without its trace.
 */
export function createPolicyHandlers(d: { policies: PolicyStore }) {
  const state = (p: PolicyRecord) => ({ rules: p.rules, version: p.version });
  return {
    'wallet.policy.get': (r: ParsedRequestOf<'wallet.policy.get'>) => d.policies.get(r),

    /** Throws WALLET_NOT_FOUND (scope of an unknown wallet), UNAVAILABLE, INTERNAL. */
    'wallet.policy.set': (r: ParsedRequestOf<'wallet.policy.set'>, ctx: HandlerContext) => {
      const { rules, ...ref } = r;
      return d.policies.set(ref, rules, (before, after) => [
        auditMessage('wallet', 'wallet.policy.set', {
          resource: { type: 'policy', id: after.id === null ? 'fleet' : `${after.scope}:${after.id}` },
          ...(ref.scope === 'user' ? { userId: ref.userId } : {}),
          status: 'success',
          before: state(before),
          after: state(after),
          ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
        }),
      ]);
    },
  };
}
