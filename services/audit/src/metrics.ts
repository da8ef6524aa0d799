import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AuditStore } from './store/audit-store.js';

export interface AuditMetrics {
  stored: Counter;
  duplicates: Counter;
  batchSize: Histogram;
  batchSeconds: Histogram;
  /** `wallet.audit.verify` runs by result: valid, invalid (tampering or a bad checkpoint), error. */
  verify: Counter<'result'>;
  /** Checkpoints signed or failed (scheduled and on demand). */
  checkpoints: Counter<'result'>;
}

export function createAuditMetrics(registry: Registry, store: AuditStore): AuditMetrics {
  new Gauge({
    name: 'audit_chain_length',
    help: 'Rows in the audit hash chain',
    registers: [registry],
    async collect() {
      // One indexed single-row read per scrape; a failed read leaves the last value.
      try {
        this.set(await store.length());
      } catch {
        /* database down: /ready says so */
      }
    },
  });
  return {
    stored: new Counter({ name: 'audit_events_stored_total', help: 'Audit events stored', registers: [registry] }),
    duplicates: new Counter({
      name: 'audit_events_duplicate_total',
      help: 'Audit events received again and not stored a second time',
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'audit_batch_size',
      help: 'Events per stored batch (one transaction)',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'audit_batch_duration_seconds',
      help: 'Time to store one batch',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    verify: new Counter({
      name: 'audit_verify_total',
      help: 'wallet.audit.verify runs by result (valid, invalid, error)',
      labelNames: ['result'],
      registers: [registry],
    }),
    checkpoints: new Counter({
      name: 'audit_checkpoints_total',
      help: 'Signed audit chain checkpoints by result (signed, failed)',
      labelNames: ['result'],
      registers: [registry],
    }),
  };
}
