import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ProvisioningMetrics {
  /** status: `ready`, `retry`, `failed`, `waiting` (breaker open, attempt not used), `skipped` (nothing to do). */
  processed: Counter<'status'>;
  duration: Histogram;
  retries: Counter;
  errors: Counter<'type'>;
  walletsCreated: Counter<'chain'>;
  active: Gauge;
  /** The alert metric: chains that ended FAILED (their job is in the DLQ). */
  deadLettered: Counter<'chain'>;
}

export function createProvisioningMetrics(registry: Registry): ProvisioningMetrics {
  const m: ProvisioningMetrics = {
    processed: new Counter({
      name: 'provisioning_jobs_processed_total',
      help: 'Chain jobs processed, by outcome',
      labelNames: ['status'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'provisioning_job_duration_seconds',
      help: 'Time to process one chain job attempt',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'provisioning_retries_total',
      help: 'Chain job attempts that failed transiently and were scheduled again',
      registers: [registry],
    }),
    errors: new Counter({ name: 'provisioning_errors_total', help: 'Failed chain job attempts, by error code', labelNames: ['type'], registers: [registry] }),
    walletsCreated: new Counter({ name: 'provisioning_wallets_created_total', help: 'Chains that became READY', labelNames: ['chain'], registers: [registry] }),
    active: new Gauge({ name: 'provisioning_active_jobs', help: 'Chain jobs being processed now', registers: [registry] }),
    deadLettered: new Counter({
      name: 'provisioning_dead_lettered_total',
      help: 'Chains that ended FAILED (job dead-lettered); alert when it rises',
      labelNames: ['chain'],
      registers: [registry],
    }),
  };
  for (const status of ['ready', 'retry', 'failed', 'waiting', 'skipped']) m.processed.inc({ status }, 0);
  return m;
}
