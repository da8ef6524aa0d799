import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { brokerCheck, brokerComponent, createBroker } from '@wallet-fleet/messaging';
import { type Logger, type Service, createRateLimiter, createServiceBase } from '@wallet-fleet/service-kit';
import type { AuditConfig } from './config.js';
import { createIngestHandler } from './handlers/ingest.js';
import { createQueryHandler, createVerifyHandler } from './handlers/query.js';
import { createAuditMetrics } from './metrics.js';
import { createAuditStore } from './store/audit-store.js';
import { QUEUES, auditTopology } from './topology.js';

/**
 * The audit service, wired but not started: migrations (unless `MIGRATE=false`), PostgreSQL, Redis,
 * the broker with its consumers, and the HTTP probes. `main.ts` runs it; tests start it in-process.
 */
export function createAuditService(config: AuditConfig, logger: Logger): Service & { port(): number } {
  const base = createServiceBase({ name: 'audit', config, logger, migrations: new URL('../migrations', import.meta.url) });
  const { pg, registry } = base;
  const redis = base.redis();
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
        throw new FleetError(
          ErrorCode.RATE_LIMITED,
          `verify runs at most ${config.AUDIT_VERIFY_PER_MINUTE} times a minute; retry in ${Math.ceil(resetMs / 1000)} s`,
          {
            details: { retryAfterMs: resetMs },
          },
        );
      }
      return verify();
    },
  });

  // The broker last, so it stops first: consuming ends and handlers drain before the pools close.
  return base.assemble({
    components: [redis.component, brokerComponent(broker, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS })],
    checks: [redis.check, brokerCheck(broker)],
  });
}
