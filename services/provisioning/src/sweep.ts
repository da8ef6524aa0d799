import { type Component, createPeriodic, type Logger } from '@wallet-fleet/service-kit';
import { chainJobMessage } from './ports.js';
import type { ProvisioningStore } from './store/provisioning-store.js';

export interface SweepOptions {
  store: ProvisioningStore;
  logger: Logger;
  intervalMs: number;
  /** Renewed lease of a re-enqueued row (the stuck threshold). */
  leaseMs: number;
  batchSize?: number;
}

/**
 * Re-enqueues PENDING chains whose lease ran out (a worker crashed mid-job and the job was lost,
 * or a job hangs). Claim and enqueue share one transaction: a crash in between enqueues nothing
 * and leaves the lease expired for the next pass. A duplicate job is harmless (the state row and
 * the wallet service's idempotency key decide).
 */
export function createSweep(opts: SweepOptions): Component & { runOnce(): Promise<number> } {
  const batch = opts.batchSize ?? 100;

  async function pass(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await opts.store.transaction(async (tx) => {
        const stuck = await tx.claimStuck(opts.leaseMs, batch);
        if (stuck.length) await tx.enqueue(stuck.map((s) => chainJobMessage(s.userId, s.chain)));
        return stuck.length;
      });
      total += n;
      if (n < batch) break;
    }
    if (total) opts.logger.warn({ count: total }, 're-enqueued stuck provisioning jobs');
    return total;
  }

  return createPeriodic({
    name: 'sweep',
    intervalMs: opts.intervalMs,
    run: pass,
    onError: (err) => opts.logger.warn({ err }, 'stuck-job sweep failed; next pass later'),
  });
}
