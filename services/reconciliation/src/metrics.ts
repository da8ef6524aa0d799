import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PassReport } from './handlers/pass.js';

export interface ReconciliationMetrics {
  /** outcome: completed, failed, skipped_locked (another replica holds the lock), skipped_recent (a pass finished less than half an interval ago). */
  runs: Counter<'outcome'>;
  /** result: credited and failed are the recoveries; reversed (a credit whose transaction left the chain), unlisted, rejected, pending (left for the next pass), settled (by someone else), standing (a re-checked credit or reversal that stands), error. */
  deposits: Counter<'result'>;
  duration: Histogram;
  lastCompleted: Gauge;
  /** Alert when above 0 (kind: credited_without_ledger_entry, ledger_entry_without_credit, ledger_amount_mismatch, reversed_without_compensation). */
  drift: Gauge<'kind'>;
  depositsPending: Gauge;
  oldestPending: Gauge;
  /** Alert when above 0: the service owning the schema has not published its own rows (relay down). */
  outboxStale: Gauge<'schema'>;
  outboxOldest: Gauge<'schema'>;
}

export function createReconciliationMetrics(registry: Registry): ReconciliationMetrics {
  return {
    runs: new Counter({ name: 'reconciliation_runs_total', help: 'Reconciliation passes by outcome', labelNames: ['outcome'], registers: [registry] }),
    deposits: new Counter({
      name: 'reconciliation_deposits_total',
      help: 'Stuck deposits re-validated, by result (credited and failed are recoveries)',
      labelNames: ['result'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'reconciliation_run_duration_seconds',
      help: 'Duration of a reconciliation pass',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    lastCompleted: new Gauge({
      name: 'reconciliation_last_completed_timestamp_seconds',
      help: 'When a pass of this instance last completed (alert when it falls behind)',
      registers: [registry],
    }),
    drift: new Gauge({
      name: 'reconciliation_drift',
      help: 'Deposit/ledger disagreements seen by the last pass (should be 0)',
      labelNames: ['kind'],
      registers: [registry],
    }),
    depositsPending: new Gauge({ name: 'reconciliation_deposits_pending', help: 'Deposits pending at the last pass', registers: [registry] }),
    oldestPending: new Gauge({
      name: 'reconciliation_oldest_pending_deposit_seconds',
      help: 'Age of the oldest pending deposit at the last pass',
      registers: [registry],
    }),
    outboxStale: new Gauge({
      name: 'reconciliation_outbox_stale_rows',
      help: 'Outbox rows found left behind by the last pass, by schema (their own relay publishes them)',
      labelNames: ['schema'],
      registers: [registry],
    }),
    outboxOldest: new Gauge({
      name: 'reconciliation_outbox_oldest_stale_seconds',
      help: 'Age of the oldest outbox row left behind at the last pass, by schema (0: none)',
      labelNames: ['schema'],
      registers: [registry],
    }),
  };
}

/** Gauges from a finished pass. */
export function observeReport(m: ReconciliationMetrics, r: PassReport): void {
  for (const o of r.outbox) {
    if (o.error) continue;
    m.outboxStale.set({ schema: o.schema }, o.staleRows);
    m.outboxOldest.set({ schema: o.schema }, o.oldestSeconds ?? 0);
  }
  if (!('error' in r.drift)) {
    m.drift.set({ kind: 'credited_without_ledger_entry' }, r.drift.creditedWithoutLedgerEntry);
    m.drift.set({ kind: 'ledger_entry_without_credit' }, r.drift.ledgerEntryWithoutCredit);
    m.drift.set({ kind: 'ledger_amount_mismatch' }, r.drift.ledgerAmountMismatch);
    m.drift.set({ kind: 'reversed_without_compensation' }, r.drift.reversedWithoutCompensation);
    m.depositsPending.set(r.drift.depositsPending);
    m.oldestPending.set(r.drift.oldestPendingSeconds ?? 0);
  }
}
