import { randomUUID } from 'node:crypto';
import { FleetError, auditMessage } from '@wallet-fleet/contracts';
import type { Logger } from '@wallet-fleet/service-kit';
import type { ReconciliationMetrics } from '../metrics.js';
import { observeReport } from '../metrics.js';
import type { PassLock } from '../store/pass-lock.js';
import type { RunRow, RunTrigger, RunsStore } from '../store/runs-store.js';
import { type PassOptions, type PassPorts, type PassReport, passSucceeded, runPass } from './pass.js';

export type PassOutcome = { outcome: 'completed' | 'failed'; runId: string; report: PassReport } | { outcome: 'skipped_locked' | 'skipped_recent' };

export interface RunDeps {
  lock: PassLock;
  runs: RunsStore;
  ports: PassPorts;
  options: PassOptions;
  metrics: ReconciliationMetrics;
  logger: Logger;
  /** This process, as recorded on its runs. */
  instance: string;
  /** A scheduled pass is skipped when one completed less than half of this ago. */
  intervalMs: number;
}

/**
 * The work of reconciliation runs: one pass under the fleet-wide lock, and the list of runs.
 * `runPass` runs a pass now unless another replica holds the lock (`skipped_locked`); a scheduled
 * pass is also skipped when one finished less than half an interval ago (`skipped_recent`), so N
 * replicas make one pass per interval, not N. A call while this instance's pass runs joins it.
 * Throws UNAVAILABLE/INTERNAL (database). `listRuns` throws VALIDATION_FAILED for a limit outside
 * 1..500, UNAVAILABLE/INTERNAL.
 */
export function createRunHandlers(d: RunDeps) {
  const { metrics, logger } = d;

  async function pass(trigger: RunTrigger): Promise<PassOutcome> {
    const held = await d.lock.tryAcquire();
    if (!held) {
      metrics.runs.inc({ outcome: 'skipped_locked' });
      return { outcome: 'skipped_locked' };
    }
    try {
      if (trigger === 'schedule') {
        const since = await d.runs.sinceLastCompleted();
        if (since !== undefined && since * 1000 < d.intervalMs / 2) {
          metrics.runs.inc({ outcome: 'skipped_recent' });
          return { outcome: 'skipped_recent' };
        }
      }
      const runId = randomUUID();
      const abandoned = await d.runs.begin({ runId, instance: d.instance, trigger });
      if (abandoned) logger.warn({ abandoned }, 'runs of a holder that died marked abandoned');
      const end = metrics.duration.startTimer();
      const report = await runPass(d.ports, d.options, held.signal, logger, (result) => metrics.deposits.inc({ result }));
      const seconds = end();
      const lost = held.signal.aborted;
      const outcome = passSucceeded(report) && !lost ? 'completed' : 'failed';
      const error = lost ? 'lock lost mid-pass' : outcome === 'failed' ? 'a step failed (see report)' : undefined;
      await d.runs.finish(runId, outcome, { ...report, seconds }, error, [auditPass(runId, outcome, report, trigger)]);
      observeReport(metrics, report);
      metrics.runs.inc({ outcome });
      if (outcome === 'completed') metrics.lastCompleted.setToCurrentTime();
      logger.info({ runId, outcome, seconds, deposits: report.deposits }, 'reconciliation pass finished');
      return { outcome, runId, report };
    } finally {
      await held.release();
    }
  }

  let inFlight: Promise<PassOutcome> | undefined;
  return {
    runPass(trigger: RunTrigger = 'manual'): Promise<PassOutcome> {
      inFlight ??= pass(trigger).finally(() => (inFlight = undefined));
      return inFlight;
    },
    /** The pass in flight, if any (stop() waits for it). */
    inFlight: () => inFlight,
    async listRuns(limit: number): Promise<RunRow[]> {
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        throw FleetError.validation([{ path: 'limit', message: 'an integer from 1 to 500' }], 'bad query');
      return d.runs.list(limit);
    },
  };
}

function auditPass(runId: string, outcome: 'completed' | 'failed', r: PassReport, trigger: RunTrigger) {
  const d = 'error' in r.deposits ? undefined : r.deposits;
  return auditMessage('reconciliation', 'pass', {
    resource: { type: 'reconciliation_run', id: runId },
    status: outcome === 'completed' ? 'success' : 'failed',
    after: {
      trigger,
      ...(d ? { deposits: d } : { depositsError: (r.deposits as { error: string }).error }),
      outboxLeftBehind: r.outbox.reduce((n, o) => n + o.staleRows, 0),
      drift: r.drift,
    },
  });
}
