import { Exchanges, operations } from '@wallet-fleet/contracts';
import { defineTopology, type Topology } from '@wallet-fleet/messaging';

/** Queue names are contracts: renaming one strands its messages (a migration, not a refactor). */
export const QUEUES = {
  /** Every `wallet.management|balance|transaction.*` request. */
  commands: 'wallet.requests',
} as const;

/** The operations this service serves (the catalogue's `owner: 'wallet'`). */
const walletOperations = Object.entries(operations)
  .filter(([, op]) => op.owner === 'wallet')
  .map(([name]) => name);

export function walletTopology(): Topology {
  return defineTopology({
    queues: [
      {
        name: QUEUES.commands,
        kind: 'rpc',
        bindings: walletOperations.map((pattern) => ({ exchange: Exchanges.commands, pattern })),
        prefetch: 64,
      },
    ],
  });
}
