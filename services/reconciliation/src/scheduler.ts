import type { Component, Logger } from '@wallet-fleet/service-kit';
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
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const jitter = (ms: number) => Math.round(ms * (0.9 + Math.random() * 0.2));
  return {
    name: 'scheduler',
    async start() {
      stopped = false;
      if (timer) return;
      const tick = () => {
        runs
          .runPass('schedule')
          .catch((err: unknown) => {
            o.metrics.runs.inc({ outcome: 'failed' });
            o.logger.warn({ err }, 'reconciliation pass could not run; next one later');
          })
          .finally(() => {
            if (!stopped) timer = setTimeout(tick, jitter(o.intervalMs));
          });
      };
      timer = setTimeout(tick, jitter(o.initialDelayMs));
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await runs.inFlight()?.catch(() => undefined);
    },
  };
}
