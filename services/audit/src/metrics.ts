import { Counter, Gauge, type Registry } from 'prom-client';
import type { AuditStore } from './store/audit-store.js';

export interface AuditMetrics {
  stored: Counter;
  duplicates: Counter;
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
  };
}
