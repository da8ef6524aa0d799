import { hostname } from 'node:os';
import { brokerCheck, brokerComponent, createBroker, createOutbox, outboxComponent } from '@wallet-fleet/messaging';
import { type Logger, type Service, createServiceBase } from '@wallet-fleet/service-kit';
import type { ReconciliationConfig } from './config.js';
import type { PassPorts } from './handlers/pass.js';
import { type PassOutcome, createRunHandlers } from './handlers/runs.js';
import { createRunsRouter } from './http/runs-routes.js';
import { createReconciliationMetrics } from './metrics.js';
import { createScheduler } from './scheduler.js';
import { createForeignOutboxStore } from './store/outbox-store.js';
import { createPassLock } from './store/pass-lock.js';
import { type RunTrigger, createRunsStore } from './store/runs-store.js';
import { reconciliationTopology } from './topology.js';

export type { PassOutcome } from './handlers/runs.js';

export interface ReconciliationService extends Service {
  port(): number;
  /** The admin listener's port (`GET /runs`, `POST /runs`). */
  adminPort(): number;
  /**
   * Runs a pass now unless another replica holds the lock (`skipped_locked`). A scheduled pass is
   * also skipped when one finished less than half an interval ago (`skipped_recent`), so N
   * replicas make one pass per interval, not N. A call while this instance's pass runs joins it.
   */
  runPass(trigger?: RunTrigger): Promise<PassOutcome>;
}

/**
 * The reconciliation service, wired but not started: migrations (unless `MIGRATE=false`), its
 * PostgreSQL pool, the broker (requests to the webhooks service), its own outbox (audit events of
 * passes), the pass scheduler, the HTTP server with the probes and `/metrics`, and the admin listener
 * with `GET /runs` and `POST /runs` (operators only: a pass on demand changes state, and reports are
 * nobody else's business).
 */
export function createReconciliationService(config: ReconciliationConfig, logger: Logger): ReconciliationService {
  const base = createServiceBase({ name: 'reconciliation', config, logger, migrations: new URL('../migrations', import.meta.url) });
  const { pg, registry, schema } = base;
  const metrics = createReconciliationMetrics(registry);
  const broker = createBroker({ url: config.AMQP_URL, service: 'reconciliation', topology: reconciliationTopology(), logger, registry });
  const outbox = createOutbox({ pool: pg.pool, schema, broker, logger, registry });

  const requestOpts = { timeoutMs: config.RECONCILE_REQUEST_TIMEOUT_MS };
  const ports: PassPorts = {
    deposits: {
      stuck: (q) => broker.request('wallet.deposits.stuck', q, requestOpts),
      reconcile: (q) => broker.request('wallet.deposits.reconcile', q, requestOpts),
      summary: () => broker.request('wallet.deposits.summary', {}, requestOpts),
    },
    outboxes: config.OUTBOX_SCHEMAS.map((s) => createForeignOutboxStore(pg.pool, s, config.OUTBOX_STALE_AFTER_MS)),
  };
  const runs = createRunHandlers({
    lock: createPassLock(pg.pool, `wallet-fleet:reconciliation:${schema}`, config.RECONCILE_LOCK_TIMEOUT_MS, logger),
    runs: createRunsStore(pg.pool, outbox),
    ports,
    options: {
      pendingAfterSeconds: Math.floor(config.RECONCILE_PENDING_AFTER_MS / 1000),
      maxAgeSeconds: Math.max(1, Math.floor(config.RECONCILE_MAX_AGE_MS / 1000)),
      concurrency: config.RECONCILE_CONCURRENCY,
      maxPerPass: config.RECONCILE_MAX_PER_PASS,
      maxRechecksPerPass: config.RECONCILE_MAX_RECHECKS_PER_PASS,
    },
    metrics,
    logger,
    instance: `${hostname()}:${process.pid}`,
    intervalMs: config.RECONCILE_INTERVAL_MS,
  });
  const scheduler = createScheduler(runs, { intervalMs: config.RECONCILE_INTERVAL_MS, initialDelayMs: config.RECONCILE_INITIAL_DELAY_MS, metrics, logger });
  const adminRoutes = createRunsRouter(runs);

  // Stopped in reverse: the scheduler waits for the pass in flight, then the relay, broker, pools.
  const service = base.assemble({
    adminRoutes,
    components: [brokerComponent(broker, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS }), outboxComponent(outbox), scheduler],
    checks: [brokerCheck(broker)],
    stopTimeoutMs: config.SHUTDOWN_TIMEOUT_MS + config.RECONCILE_REQUEST_TIMEOUT_MS + 2000,
  });
  return Object.assign(service, { runPass: (trigger?: RunTrigger) => runs.runPass(trigger) });
}
