import { Exchanges } from '@wallet-fleet/contracts';
import { defineTopology, type Topology } from '@wallet-fleet/messaging';
import { retryPolicyOf } from '@wallet-fleet/service-kit';
import type { AuditConfig } from './config.js';

/** Queue names are contracts: renaming one strands its messages (a migration, not a refactor). */
export const QUEUES = {
  /** Every `audit.<service>.<action>` event, stored in batches (not `audit.checkpoint`: two words). */
  events: 'audit.events',
  /** `wallet.audit.query` and `wallet.audit.verify` requests. */
  commands: 'audit.commands',
} as const;

export function auditTopology(config: AuditConfig): Topology {
  return defineTopology({
    queues: [
      {
        name: QUEUES.events,
        kind: 'events',
        // Three words or more: `audit.#` would also take our own `audit.checkpoint`.
        bindings: [{ exchange: Exchanges.events, pattern: 'audit.*.*.#' }],
        // Room for two full batches: one being written while the next one fills.
        prefetch: config.AUDIT_BATCH_MAX * 2,
        retry: retryPolicyOf(config, 'AUDIT'),
      },
      {
        name: QUEUES.commands,
        kind: 'rpc',
        bindings: [
          { exchange: Exchanges.commands, pattern: 'wallet.audit.query' },
          { exchange: Exchanges.commands, pattern: 'wallet.audit.verify' },
          { exchange: Exchanges.commands, pattern: 'wallet.audit.checkpoint' },
        ],
        prefetch: 16,
      },
    ],
  });
}
