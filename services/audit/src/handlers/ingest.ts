import type { AuditEvent } from '@wallet-fleet/contracts';
import type { AuditStore } from '../store/audit-store.js';
import type { AuditMetrics } from '../metrics.js';

/**
 * Stores a batch of audit events in one transaction. Duplicates (same eventId) are skipped, so a
 * redelivered or republished event has no second effect. A database failure fails the whole batch
 * with `UNAVAILABLE` (retried by the broker) or `INTERNAL` (dead-lettered).
 */
export function createIngestHandler(store: AuditStore, metrics: AuditMetrics) {
  return async (items: ReadonlyArray<{ input: AuditEvent }>): Promise<ReadonlyArray<Error | undefined>> => {
    let outcomes;
    const end = metrics.batchSeconds.startTimer();
    try {
      outcomes = await store.append(items.map((i) => i.input));
    } finally {
      end();
      metrics.batchSize.observe(items.length);
    }
    for (const o of outcomes) (o === 'stored' ? metrics.stored : metrics.duplicates).inc();
    return outcomes.map(() => undefined);
  };
}
