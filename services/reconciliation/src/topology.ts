import { defineTopology, type Topology } from '@wallet-fleet/messaging';

/**
 * Reconciliation consumes nothing: it calls the webhooks service's `wallet.deposits.*` operations
 * (direct reply-to) and publishes outbox rows other relays left behind. The topology only asserts
 * the fleet's exchanges.
 */
export function reconciliationTopology(): Topology {
  return defineTopology({ queues: [] });
}
