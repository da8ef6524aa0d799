import { type AuditEvent, FleetError } from '@wallet-fleet/contracts';
import type { AuditStore } from '../store/audit-store.js';
import type { AuditMetrics } from '../metrics.js';

/**
 * Stores a batch of audit events in one transaction. Duplicates (same eventId) are skipped, so a
 * redelivered or republished event has no second effect. A database that is down fails the whole
 * batch with `UNAVAILABLE` (retried by the broker). A batch the database refuses for its content
 * (`INTERNAL`: a value the contracts let through but PostgreSQL will not keep) is stored again one
 * event at a time, so that only the poison event fails (dead-lettered) and its neighbours are kept.
 */
export function createIngestHandler(store: AuditStore, metrics: AuditMetrics) {
  const append = async (events: AuditEvent[]) => {
    const end = metrics.batchSeconds.startTimer();
    try {
      const outcomes = await store.append(events);
      for (const o of outcomes) (o === 'stored' ? metrics.stored : metrics.duplicates).inc();
    } finally {
      end();
      metrics.batchSize.observe(events.length);
    }
  };
  return async (items: ReadonlyArray<{ input: AuditEvent }>): Promise<ReadonlyArray<Error | undefined>> => {
    try {
      await append(items.map((i) => i.input));
      return items.map(() => undefined);
    } catch (e) {
      if (items.length === 1 || !(e instanceof FleetError) || e.retryable) throw e;
    }
    // One at a time, in order: the chain keeps the order the events arrived in.
    const outcomes: Array<Error | undefined> = [];
    for (const item of items) {
      try {
        await append([item.input]);
        outcomes.push(undefined);
      } catch (e) {
        outcomes.push(e instanceof Error ? e : new Error(String(e)));
      }
    }
    return outcomes;
  };
}
