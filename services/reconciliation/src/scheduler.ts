import { type Component, createPeriodic, type Logger } from '@wallet-fleet/service-kit';
import type { createRunHandlers } from './handlers/runs.js';
import type { ReconciliationMetrics } from './metrics.js';

/**
 * Runs a scheduled pass every `intervalMs` (±10 %, so that replicas drift apart), the first after
 * `initialDelayMs`. A pass that cannot run is counted and logged; the next one comes all the same.
 * stop() waits for the pass in flight (its lock released) before the pools close.
 */
export function createScheduler(
  runs: ReturnType<typeof createRunHandlers>,
  o: { intervalMs: number; initialDelayMs: number; metrics: ReconciliationMetrics; logger: Logger },
): Component {
  const periodic = createPeriodic({
    name: 'scheduler',
    intervalMs: o.intervalMs,
    initialDelayMs: o.initialDelayMs,
    jitter: 0.1,
    run: () => runs.runPass('schedule'),
    onError: (err) => {
      o.metrics.runs.inc({ outcome: 'failed' });
      o.logger.warn({ err }, 'reconciliation pass could not run; next one later');
    },
  });
  return {
    name: periodic.name,
    start: () => periodic.start(),
    async stop() {
      await periodic.stop();
      // A pass an operator asked for (wallet.reconcile.run) holds the lock too.
      await runs.inFlight()?.catch(() => undefined);
    },
  };
}
