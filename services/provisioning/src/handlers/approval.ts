import { type Chain, type ParsedRequestOf, type ResultOf, allChains, auditMessage } from '@wallet-fleet/contracts';
import type { HandlerContext } from '@wallet-fleet/messaging';
import { chainJobMessage } from '../ports.js';
import type { ChainState, ProvisioningStore } from '../store/provisioning-store.js';

export interface ApprovalDeps {
  store: ProvisioningStore;
  /** How long a freshly enqueued job may take to start before the sweep enqueues it again. */
  leaseMs: number;
}

type Status = ResultOf<'wallet.provisioning.status'>;

const statusOf = (userId: string, rows: ChainState[]): Status => ({
  userId,
  chains: rows.map((r) => ({
    chain: r.chain,
    status: r.status,
    attempts: r.attempts,
    lastError: r.lastError,
    address: r.address,
    walletId: r.walletId,
    updatedAt: r.updatedAt,
  })),
});

/**
 * `kyc.approved` (event) and `wallet.provisioning.provision` / `.status` (commands). Database
 * failures are UNAVAILABLE (retryable: the approval is retried by the broker), or INTERNAL.
 */
export function createApprovalHandlers({ store, leaseMs }: ApprovalDeps) {
  /**
   * Creates the PENDING rows and enqueues one job per new chain in one transaction: a crash
   * before COMMIT leaves nothing (the approval is redelivered), after it the outbox delivers the
   * jobs. `retrigger` (the admin command) also sends FAILED chains round again.
   */
  async function provision(userId: string, chains: readonly Chain[], retrigger: boolean, ctx: HandlerContext): Promise<Chain[]> {
    return store.transaction(async (tx) => {
      await tx.upsertUser(userId, chains);
      const fresh = await tx.insertPending(userId, chains, leaseMs);
      const again = retrigger ? await tx.resetFailed(userId, chains, leaseMs) : [];
      const started = [...fresh, ...again];
      if (started.length > 0) {
        const correlation = ctx.correlationId ? { correlationId: ctx.correlationId } : {};
        await tx.enqueue([
          ...started.map((chain) => chainJobMessage(userId, chain)),
          ...started.map((chain) =>
            auditMessage('provisioning', 'provisioning.requested', {
              resource: { type: 'provisioning', id: `${userId}:${chain}` },
              userId,
              status: 'started',
              before: again.includes(chain) ? { status: 'FAILED' } : null,
              after: { status: 'PENDING', chain, trigger: retrigger ? 'provision' : 'kyc.approved' },
              ...correlation,
            }),
          ),
        ]);
      }
      return started;
    });
  }

  async function status(userId: string): Promise<Status> {
    return statusOf(userId, await store.list(userId));
  }

  return {
    'kyc.approved': async (e: ParsedRequestOf<'wallet.provisioning.provision'>, ctx: HandlerContext): Promise<void> => {
      const started = await provision(e.userId, e.chains ?? allChains, false, ctx);
      ctx.logger.info({ userId: e.userId, chains: started }, started.length ? 'provisioning started' : 'approval already handled');
    },
    'wallet.provisioning.provision': async (r: ParsedRequestOf<'wallet.provisioning.provision'>, ctx: HandlerContext): Promise<Status> => {
      await provision(r.userId, r.chains ?? allChains, true, ctx);
      return status(r.userId);
    },
    'wallet.provisioning.status': async (r: ParsedRequestOf<'wallet.provisioning.status'>): Promise<Status> => status(r.userId),
  };
}
