import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type AuditEvent, ErrorCode, FleetError, auditRoutingKey } from '@wallet-fleet/contracts';
import { type Broker, brokerCheck, createBroker, createOutbox, type Outbox } from '@wallet-fleet/messaging';
import {
  type Component,
  type Logger,
  type Service,
  createHttpServer,
  createMetrics,
  createPgPool,
  createService,
  databaseError,
  migrationsComponent,
} from '@wallet-fleet/service-kit';
import express from 'express';
import type pg from 'pg';
import type { ReconciliationConfig } from './config.js';
import { createPassLock } from './lock.js';
import { createReconciliationMetrics, observeReport } from './metrics.js';
import { type PassPorts, type PassReport, passSucceeded, runPass } from './pass.js';
import { type RunTrigger, runsStore } from './store/runs-store.js';
import { reconciliationTopology } from './topology.js';

const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

export type PassOutcome =
  | { outcome: 'completed' | 'failed'; runId: string; report: PassReport }
  | { outcome: 'skipped_locked' | 'skipped_recent' };

export interface ReconciliationService extends Service {
  port(): number;
  /**
   * Runs a pass now unless another replica holds the lock (`skipped_locked`). A scheduled pass is
   * also skipped when one finished less than half an interval ago (`skipped_recent`), so N
   * replicas make one pass per interval, not N. A call while this instance's pass runs joins it.
   */
  runPass(trigger?: RunTrigger): Promise<PassOutcome>;
}

/**
 * The reconciliation service, wired but not started: migrations (unless `MIGRATE=false`), its
 * PostgreSQL pool, the broker (requests to the webhooks service, publishes of left-behind outbox
 * rows), its own outbox (audit events of passes), the pass scheduler, and one HTTP server with the
 * probes, `/metrics`, `GET /runs` and `POST /runs`.
 */
export function createReconciliationService(config: ReconciliationConfig, logger: Logger): ReconciliationService {
  const schema = config.DATABASE_SCHEMA;
  const registry = createMetrics('reconciliation');
  const metrics = createReconciliationMetrics(registry);
  const pg = createPgPool({ url: config.DATABASE_URL, schema, max: config.DATABASE_POOL_MAX, applicationName: 'reconciliation', logger });
  const broker = createBroker({ url: config.AMQP_URL, service: 'reconciliation', topology: reconciliationTopology(), logger, registry });
  const outbox = createOutbox({ pool: pg.pool, schema, broker, logger, registry });
  const lock = createPassLock(pg.pool, `wallet-fleet:reconciliation:${schema}`, config.RECONCILE_LOCK_TIMEOUT_MS, logger);
  const instance = `${hostname()}:${process.pid}`;

  const requestOpts = { timeoutMs: config.RECONCILE_REQUEST_TIMEOUT_MS };
  const ports: PassPorts = {
    deposits: {
      stuck: (q) => broker.request('wallet.deposits.stuck', q, requestOpts),
      reconcile: (q) => broker.request('wallet.deposits.reconcile', q, requestOpts),
      summary: () => broker.request('wallet.deposits.summary', {}, requestOpts),
    },
    outboxes: config.OUTBOX_SCHEMAS.map((s) => foreignOutbox(pg.pool, s, broker, logger, config.OUTBOX_STALE_AFTER_MS)),
  };

  let inFlight: Promise<PassOutcome> | undefined;
  async function pass(trigger: RunTrigger): Promise<PassOutcome> {
    const held = await lock.tryAcquire().catch((e: unknown) => {
      throw databaseError(e);
    });
    if (!held) {
      metrics.runs.inc({ outcome: 'skipped_locked' });
      return { outcome: 'skipped_locked' };
    }
    try {
      if (trigger === 'schedule') {
        const since = await runsStore.sinceLastCompleted(pg.pool);
        if (since !== undefined && since * 1000 < config.RECONCILE_INTERVAL_MS / 2) {
          metrics.runs.inc({ outcome: 'skipped_recent' });
          return { outcome: 'skipped_recent' };
        }
      }
      const runId = randomUUID();
      const abandoned = await runsStore.begin(pg.pool, { runId, instance, trigger });
      if (abandoned) logger.warn({ abandoned }, 'runs of a holder that died marked abandoned');
      const end = metrics.duration.startTimer();
      const report = await runPass(
        ports,
        {
          pendingAfterSeconds: Math.floor(config.RECONCILE_PENDING_AFTER_MS / 1000),
          maxAgeSeconds: Math.max(1, Math.floor(config.RECONCILE_MAX_AGE_MS / 1000)),
          concurrency: config.RECONCILE_CONCURRENCY,
          maxPerPass: config.RECONCILE_MAX_PER_PASS,
        },
        held.signal,
        logger,
        (result) => metrics.deposits.inc({ result }),
      );
      const seconds = end();
      const lost = held.signal.aborted;
      const outcome = passSucceeded(report) && !lost ? 'completed' : 'failed';
      const error = lost ? 'lock lost mid-pass' : outcome === 'failed' ? 'a step failed (see report)' : undefined;
      await runsStore.finish(pg.pool, outbox, runId, outcome, { ...report, seconds }, error, [auditPass(runId, outcome, report, trigger)]);
      observeReport(metrics, report);
      metrics.runs.inc({ outcome });
      if (outcome === 'completed') metrics.lastCompleted.setToCurrentTime();
      logger.info({ runId, outcome, seconds, deposits: report.deposits }, 'reconciliation pass finished');
      return { outcome, runId, report };
    } finally {
      await held.release();
    }
  }
  const runPassNow = (trigger: RunTrigger = 'manual') => {
    inFlight ??= pass(trigger).finally(() => (inFlight = undefined));
    return inFlight;
  };

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const jitter = (ms: number) => Math.round(ms * (0.9 + Math.random() * 0.2));
  const scheduler: Component = {
    name: 'scheduler',
    async start() {
      stopped = false;
      if (timer) return;
      const tick = () => {
        runPassNow('schedule')
          .catch((err: unknown) => {
            metrics.runs.inc({ outcome: 'failed' });
            logger.warn({ err }, 'reconciliation pass could not run; next one later');
          })
          .finally(() => {
            if (!stopped) timer = setTimeout(tick, jitter(config.RECONCILE_INTERVAL_MS));
          });
      };
      timer = setTimeout(tick, jitter(config.RECONCILE_INITIAL_DELAY_MS));
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      // The pass in flight ends (its lock released) before the pools close.
      await inFlight?.catch(() => undefined);
    },
  };

  const routes = express.Router();
  routes.get('/runs', async (req, res) => {
    const raw = typeof req.query.limit === 'string' ? Number(req.query.limit) : 20;
    if (!Number.isInteger(raw) || raw < 1 || raw > 500) {
      res.status(400).json({ error: { code: 'VALIDATION_FAILED', message: 'bad query', fields: [{ path: 'limit', message: 'an integer from 1 to 500' }] } });
      return;
    }
    try {
      res.json({ runs: await runsStore.list(pg.pool, raw) });
    } catch (e) {
      res.status(503).json({ error: { code: 'UNAVAILABLE', message: e instanceof Error ? e.message : 'unavailable' } });
    }
  });
  // Operator trigger (internal port, like /metrics): runs a pass now and answers with its report.
  routes.post('/runs', async (_req, res) => {
    try {
      const r = await runPassNow('manual');
      res.status(r.outcome === 'skipped_locked' ? 409 : 200).json(r);
    } catch (e) {
      res.status(503).json({ error: { code: 'UNAVAILABLE', message: e instanceof Error ? e.message : 'unavailable' } });
    }
  });

  const migrations = migrationsComponent({ enabled: config.MIGRATE, databaseUrl: config.DATABASE_URL, schema, dir: MIGRATIONS, logger });
  const brokerComponent: Component = { name: 'broker', start: () => broker.start(), stop: () => broker.stop({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }) };
  const relay: Component = { name: 'outbox', start: () => outbox.start(), stop: () => outbox.stop() };
  const http = createHttpServer({ port: config.HTTP_PORT, registry, logger, routes, checks: [pg.check, brokerCheck(broker)] });
  // Stopped in reverse: the scheduler waits for the pass in flight, then the relay, broker, pools.
  const service = createService({
    name: 'reconciliation',
    logger,
    components: [http, migrations, pg.component, brokerComponent, relay, scheduler],
    stopTimeoutMs: config.SHUTDOWN_TIMEOUT_MS + config.RECONCILE_REQUEST_TIMEOUT_MS + 2000,
  });
  return Object.assign(service, { port: () => http.port(), runPass: runPassNow });
}

/** Another service's outbox, seen from here: the stale-row count and a relay for flushing it. */
function foreignOutbox(pool: pg.Pool, schema: string, broker: Broker, logger: Logger, staleAfterMs: number): PassPorts['outboxes'][number] {
  // Not started: only flush() is used, when rows were left behind. SKIP LOCKED keeps it apart from
  // the owner's relay, so a row is never published by both at once.
  let relay: Outbox | undefined;
  return {
    schema,
    async stale() {
      let rows: Array<{ n: string; oldest: number | null }>;
      try {
        ({ rows } = await pool.query<{ n: string; oldest: number | null }>(
          `SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS oldest
             FROM "${schema}".outbox WHERE created_at < now() - make_interval(secs => $1)`,
          [staleAfterMs / 1000],
        ));
      } catch (e) {
        // OUTBOX_SCHEMAS names a schema without an outbox: a configuration error to report, not retry.
        if ((e as { code?: string }).code === '42P01') throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, `no outbox table in schema ${schema}`);
        throw databaseError(e);
      }
      return { rows: Number(rows[0]?.n ?? 0), oldestSeconds: rows[0]?.oldest == null ? null : Math.round(rows[0].oldest) };
    },
    flush() {
      relay ??= createOutbox({ pool, schema, broker, logger: logger.child({ outbox: schema }) });
      return relay.flush();
    },
  };
}

function auditPass(runId: string, outcome: 'completed' | 'failed', r: PassReport, trigger: RunTrigger) {
  const eventId = randomUUID();
  const d = 'error' in r.deposits ? undefined : r.deposits;
  const event: AuditEvent = {
    eventId,
    occurredAt: new Date().toISOString(),
    actor: { type: 'service', id: 'reconciliation' },
    action: 'pass',
    resource: { type: 'reconciliation_run', id: runId },
    status: outcome === 'completed' ? 'success' : 'failed',
    after: {
      trigger,
      ...(d ? { checked: d.checked, credited: d.credited, failed: d.failed, stillPending: d.stillPending, errors: d.errors } : { depositsError: (r.deposits as { error: string }).error }),
      republished: r.outbox.reduce((n, o) => n + o.republished, 0),
      drift: r.drift,
    },
  };
  return { routingKey: auditRoutingKey('reconciliation', 'pass'), payload: event, messageId: eventId };
}
