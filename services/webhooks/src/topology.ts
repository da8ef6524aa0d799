import { Exchanges, operations } from '@wallet-fleet/contracts';
import { defineTopology, type RetryPolicy, type Topology } from '@wallet-fleet/messaging';

/** Queue names are contracts: renaming one strands its messages (a migration, not a refactor). */
export const QUEUES = {
  /** `deposit.received`: the processing job of every accepted webhook. */
  deposits: 'webhooks.deposits',
  /** `wallet.created`: addresses of wallets of ours, copied into `known_addresses`. */
  wallets: 'webhooks.wallets',
  /** `wallet.deposits.*` requests (reconciliation, operators). */
  commands: 'webhooks.commands',
} as const;

const webhooksOperations = Object.entries(operations)
  .filter(([, op]) => op.owner === 'webhooks')
  .map(([name]) => name);

export function webhooksTopology(retry: RetryPolicy): Topology {
  return defineTopology({
    queues: [
      {
        name: QUEUES.deposits,
        kind: 'events',
        bindings: [{ exchange: Exchanges.events, pattern: 'deposit.received' }],
        prefetch: 32,
        retry,
      },
      {
        name: QUEUES.wallets,
        kind: 'events',
        bindings: [{ exchange: Exchanges.events, pattern: 'wallet.created' }],
        prefetch: 64,
      },
      {
        name: QUEUES.commands,
        kind: 'rpc',
        bindings: webhooksOperations.map((pattern) => ({ exchange: Exchanges.commands, pattern })),
        // Reconciliation asks with bounded concurrency; each answer may wait on a chain RPC.
        prefetch: 16,
      },
    ],
  });
}
