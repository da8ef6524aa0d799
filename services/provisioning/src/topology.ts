import { Exchanges, operations } from '@wallet-fleet/contracts';
import { defineTopology, type Topology } from '@wallet-fleet/messaging';
import { retryPolicyOf } from '@wallet-fleet/service-kit';
import type { ProvisioningConfig } from './config.js';

/** Queue names are contracts: renaming one strands its messages (a migration, not a refactor). */
export const QUEUES = {
  /** `kyc.approved` events: create the state rows and fan out one job per chain. */
  approvals: 'provisioning.jobs',
  /** `provisioning.chain.requested`: one job per user and chain, retried on its own. */
  chains: 'provisioning.chains',
  /** `wallet.provisioning.status` and `wallet.provisioning.provision` requests. */
  commands: 'provisioning.commands',
} as const;

const CHAIN_JOB = 'provisioning.chain.requested';

const provisioningOperations = Object.entries(operations)
  .filter(([, op]) => op.owner === 'provisioning')
  .map(([name]) => name);

export function provisioningTopology(config: ProvisioningConfig): Topology {
  return defineTopology({
    queues: [
      {
        name: QUEUES.approvals,
        kind: 'events',
        bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }],
        // Only our own database can fail here: retry on the broker with short delays.
        retry: { maxAttempts: 10, initialDelayMs: 1000, maxDelayMs: 60_000 },
      },
      {
        name: QUEUES.chains,
        kind: 'events',
        bindings: [{ exchange: Exchanges.events, pattern: CHAIN_JOB }],
        prefetch: config.PROVISIONING_CONCURRENCY,
        retry: { ...retryPolicyOf(config, 'PROVISIONING'), factor: 2, jitter: 0.2 },
      },
      {
        name: QUEUES.commands,
        kind: 'rpc',
        bindings: provisioningOperations.map((pattern) => ({ exchange: Exchanges.commands, pattern })),
        prefetch: 16,
      },
    ],
  });
}
