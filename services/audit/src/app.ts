import { fileURLToPath } from 'node:url';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { brokerCheck, createBroker } from '@wallet-fleet/messaging';
import {
  type Component,
  type Logger,
  type Service,
  createHttpServer,
  createMetrics,
  createPgPool,
  createRateLimiter,
  createRedis,
  createService,
  migrationsComponent,
} from '@wallet-fleet/service-kit';
import type { AuditConfig } from './config.js';
import { createIngestHandler } from './handlers/ingest.js';
import { createQueryHandler, createVerifyHandler } from './handlers/query.js';
import { createAuditMetrics } from './metrics.js';
import { createAuditStore } from './store/audit-store.js';
import { QUEUES, auditTopology } from './topology.js';

const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

/**
 * The audit service, wired but not started: migrations (unless `MIGRATE=false`), PostgreSQL, Redis,
 * the broker with its consumers, and the HTTP probes. `main.ts` runs it; tests start it in-process.
 */
export function createAuditService(config: AuditConfig, logger: Logger): Service & { port(): number } {
  const schema = config.DATABASE_SCHEMA;
  const registry = createMetrics('audit');
  const pg = createPgPool({ url: config.DATABASE_URL, schema, max: config.DATABASE_POOL_MAX, applicationName: 'audit', logger });
  const redis = createRedis({ url: config.REDIS_URL, keyPrefix: `audit:${schema}:`, logger, connectionName: 'audit' });
  const store = createAuditStore(pg.pool);
  const metrics = createAuditMetrics(registry, store);
  const verifyLimit = createRateLimiter({ redis: redis.client, prefix: 'verify', limit: config.AUDIT_VERIFY_PER_MINUTE, windowMs: 60_000 });
  const verify = createVerifyHandler(store);

  const broker = createBroker({ url: config.AMQP_URL, service: 'audit', topology: auditTopology(config), logger, registry });
  broker.handleEventBatch(QUEUES.events, 'audit.#', createIngestHandler(store, metrics), {
    maxSize: config.AUDIT_BATCH_MAX,
    maxWaitMs: config.AUDIT_BATCH_WAIT_MS,
  });
  broker.handleCommands(QUEUES.commands, {
    'wallet.audit.query': createQueryHandler(store),
    'wallet.audit.verify': async () => {
      const { allowed, resetMs } = await verifyLimit.take('all');
      if (!allowed) {
        throw new FleetError(ErrorCode.RATE_LIMITED, `verify runs at most ${config.AUDIT_VERIFY_PER_MINUTE} times a minute; retry in ${Math.ceil(resetMs / 1000)} s`, {
          details: { retryAfterMs: resetMs },
        });
      }
      return verify();
    },
  });

  const migrations = migrationsComponent({ enabled: config.MIGRATE, databaseUrl: config.DATABASE_URL, schema, dir: MIGRATIONS, logger });
  const brokerComponent: Component = {
    name: 'broker',
    start: () => broker.start(),
    stop: () => broker.stop({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }),
  };
  const http = createHttpServer({
    port: config.HTTP_PORT,
    registry,
    logger,
    checks: [
      pg.check,
      redis.check,
      brokerCheck(broker),
    ],
  });
  // Probes first (they answer while the rest starts, and say not-ready while it drains); the broker
  // last, so it stops first: consuming ends and handlers drain before the pool closes.
  const service = createService({
    name: 'audit',
    logger,
    components: [http, migrations, pg.component, redis.component, brokerComponent],
    stopTimeoutMs: config.SHUTDOWN_TIMEOUT_MS + 2000,
  });
  return Object.assign(service, { port: () => http.port() });
}
