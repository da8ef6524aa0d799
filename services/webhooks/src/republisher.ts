import type { Component, Logger } from '@wallet-fleet/service-kit';
import type { Counter } from 'prom-client';
import type { JobPublisher } from './job-publisher.js';
import type { DepositStore } from './store/deposit-store.js';

const BATCH = 100;

/**
 * The recovery of the intake's direct publish: every `intervalMs`, deliveries stored more than
 * `graceMs` ago whose messages were never confirmed by the broker (a process killed between its
 * commit and the confirm, a publish the broker failed or refused while the sender gave up) are
 * published again and marked, in batches claimed `FOR UPDATE SKIP LOCKED` (replicas share the work).
 * Sending twice is harmless: the deposit consumer settles a deposit once (its status, the ledger's
 * unique credit), audit stores an eventId once. The grace is longer than a publish's confirm timeout,
 * so a request still waiting on its confirm is rarely sent for. A sweep that fails is logged and
 * tried again at the next tick. Runs only while started; stop waits for the sweep in flight.
 */
export function createRepublisher(deps: {
  store: Pick<DepositStore, 'republishStale'>;
  jobs: JobPublisher;
  graceMs: number;
  intervalMs: number;
  republished: Counter;
  logger: Logger;
}): Component & { sweep(): Promise<number> } {
  const log = deps.logger.child({ component: 'republisher' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;

  const sweep = (): Promise<number> => {
    running ??= (async () => {
      let total = 0;
      try {
        for (;;) {
          let sent = 0;
          const claimed = await deps.store.republishStale(deps.graceMs, BATCH, async (claims) => {
            const ids = await deps.jobs.publishAll(claims);
            sent = ids.length;
            return ids;
          });
          total += sent;
          // A short batch, or one whose publishes failed (broker down): wait for the next tick.
          if (claimed < BATCH || sent < claimed) break;
        }
      } finally {
        running = undefined;
        if (total > 0) {
          deps.republished.inc(total);
          log.warn({ deposits: total }, 'republished deposits whose messages were never confirmed');
        }
      }
      return total;
    })();
    return running;
  };

  return {
    name: 'republisher',
    sweep,
    start: async () => {
      timer ??= setInterval(() => {
        sweep().catch((err: unknown) => log.warn({ err }, 'republish sweep failed; tried again next tick'));
      }, deps.intervalMs);
    },
    stop: async () => {
      clearInterval(timer);
      await running?.catch(() => undefined);
      deps.jobs.flush();
    },
  };
}
