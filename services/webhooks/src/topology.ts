import { Exchanges } from '@wallet-fleet/contracts';
import { defineTopology, type RetryPolicy, type Topology } from '@wallet-fleet/messaging';

/** Queue names are contracts: renaming one strands its messages (a migration, not a refactor). */
export const QUEUES = {
  /** `deposit.received`: the processing job of every accepted webhook. */
  deposits: 'webhooks.deposits',
  /** `wallet.created`: addresses of wallets of ours, copied into `known_addresses`. */
  wallets: 'webhooks.wallets',
} as const;

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
    ],
  });
}
