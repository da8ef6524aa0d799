import { getOrCreateMetric, type Registry } from '@wallet-fleet/service-kit';
import { Counter, Gauge } from 'prom-client';

export type KeyPoolMetrics = ReturnType<typeof keyPoolMetrics>;

/** The key pool's metrics, registered at start so that a scrape shows them before the first create. */
export function keyPoolMetrics(registry: Registry) {
  return {
    available: getOrCreateMetric(
      registry,
      'wallet_key_pool_available',
      () =>
        new Gauge({
          name: 'wallet_key_pool_available',
          help: 'Unassigned keys in the key pool, by kind, as counted by the last refill pass',
          labelNames: ['algorithm', 'protection_level'],
          registers: [registry],
        }),
    ),
    created: getOrCreateMetric(
      registry,
      'wallet_key_pool_created_total',
      () =>
        new Counter({
          name: 'wallet_key_pool_created_total',
          help: 'Keys the refiller created for the key pool',
          labelNames: ['algorithm', 'protection_level'],
          registers: [registry],
        }),
    ),
    empty: getOrCreateMetric(
      registry,
      'wallet_key_pool_empty_total',
      () =>
        new Counter({
          name: 'wallet_key_pool_empty_total',
          help: 'Wallet creates that found the key pool empty and created their key synchronously',
          labelNames: ['algorithm', 'protection_level'],
          registers: [registry],
        }),
    ),
  };
}
