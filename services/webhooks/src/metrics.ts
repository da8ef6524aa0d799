import { Counter, type Registry } from 'prom-client';

export interface WebhooksMetrics {
  /** outcome: accepted, duplicate, unauthorized, bad_body, too_large, rate_limited, replayed, not_running, unavailable. */
  deliveries: Counter<'outcome'>;
  /** Credits reversed because their transaction left the chain (an alert: should stay 0). */
  reversed: Counter<'chain'>;
  /** Deliveries whose messages the republisher sent again (stored, never confirmed): should stay near 0. */
  republished: Counter;
}

export function createWebhooksMetrics(registry: Registry): WebhooksMetrics {
  return {
    deliveries: new Counter({
      name: 'webhooks_deliveries_total',
      help: 'Deposit webhook deliveries by outcome (accepted, duplicate, unauthorized, bad_body, too_large, rate_limited, replayed, not_running, unavailable)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    reversed: new Counter({
      name: 'webhooks_deposits_reversed_total',
      help: 'Credited deposits reversed with a compensating ledger entry because their transaction left the chain (reorganisation), by chain',
      labelNames: ['chain'] as const,
      registers: [registry],
    }),
    republished: new Counter({
      name: 'webhooks_deposits_republished_total',
      help: 'Stored deliveries whose deposit.received and audit event were never confirmed by the broker, sent again by the republisher',
      registers: [registry],
    }),
  };
}
