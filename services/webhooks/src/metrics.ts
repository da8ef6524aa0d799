import { Counter, type Registry } from 'prom-client';

export interface WebhooksMetrics {
  /** outcome: accepted, duplicate, unauthorized, bad_body, too_large, rate_limited, replayed, not_running, unavailable. */
  deliveries: Counter<'outcome'>;
}

export function createWebhooksMetrics(registry: Registry): WebhooksMetrics {
  return {
    deliveries: new Counter({
      name: 'webhooks_deliveries_total',
      help: 'Deposit webhook deliveries by outcome (accepted, duplicate, unauthorized, bad_body, too_large, rate_limited, replayed, not_running, unavailable)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}
