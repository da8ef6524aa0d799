import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { createKmsCustody } from '@wallet-fleet/kms';
import { brokerCheck, brokerComponent, createBroker } from '@wallet-fleet/messaging';
import { CLOUD_KMS_ENDPOINT, type Component, type Logger, type Service, createRateLimiter, createServiceBase } from '@wallet-fleet/service-kit';
import { checkpointScheduler, createCheckpointSigner, takeCheckpoint } from './checkpoints.js';
import type { AuditConfig } from './config.js';
import { createIngestHandler } from './handlers/ingest.js';
import { createCheckpointHandler, createQueryHandler, createVerifyHandler } from './handlers/query.js';
import { createAuditMetrics } from './metrics.js';
import { createAuditStore } from './store/audit-store.js';
import { QUEUES, auditTopology } from './topology.js';

/**
 * The audit service, wired but not started: migrations (unless `MIGRATE=false`), PostgreSQL, Redis,
 * the broker with its consumers, the checkpoint schedule, and the HTTP probes. KMS is used for
 * checkpoints only and is not part of readiness: events are stored while it is unreachable. `main.ts` runs it; tests start it in-process.
 */
export function createAuditService(config: AuditConfig, logger: Logger): Service & { port(): number } {
  const base = createServiceBase({ name: 'audit', config, logger, migrations: new URL('../migrations', import.meta.url) });
  const { pg, registry } = base;
  const redis = base.redis();
  const store = createAuditStore(pg.pool);
  const metrics = createAuditMetrics(registry, store);
  const verifyLimit = createRateLimiter({ redis: redis.client, prefix: 'verify', limit: config.AUDIT_VERIFY_PER_MINUTE, windowMs: 60_000 });
  const custody = createKmsCustody({
    projectId: config.KMS_PROJECT_ID,
    locationId: config.KMS_LOCATION_ID,
    keyRingId: config.KMS_KEY_RING_ID,
    ...(config.KMS_ENDPOINT === CLOUD_KMS_ENDPOINT ? {} : { apiEndpoint: config.KMS_ENDPOINT }),
    callTimeoutMs: config.KMS_CALL_TIMEOUT_MS,
    logger,
    registry,
  });
  const signer = createCheckpointSigner(custody, config.AUDIT_CHECKPOINT_KEY_ID);
  const verify = createVerifyHandler(store, signer, metrics);

  const broker = createBroker({ url: config.AMQP_URL, service: 'audit', topology: auditTopology(config), logger, registry });
  const take = () =>
    takeCheckpoint({
      store,
      signer,
      publish: (c) => broker.publishEvent<'audit.checkpoint'>('audit.checkpoint', c, { messageId: c.checkpointId }),
    });
  broker.handleEventBatch(QUEUES.events, 'audit.#', createIngestHandler(store, metrics), {
    maxSize: config.AUDIT_BATCH_MAX,
    maxWaitMs: config.AUDIT_BATCH_WAIT_MS,
  });
  broker.handleCommands(QUEUES.commands, {
    'wallet.audit.query': createQueryHandler(store),
    'wallet.audit.checkpoint': createCheckpointHandler(take, metrics),
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

  const kms: Component = { name: 'kms', start: async () => undefined, stop: () => custody.close() };
  const checkpoints = checkpointScheduler({ intervalMs: config.AUDIT_CHECKPOINT_INTERVAL_MS, take, store, metrics, logger });

  // The broker after what it uses, so it stops first: consuming ends and handlers drain before the
  // pools close; the scheduler after the broker it publishes through.
  return base.assemble({
    components: [redis.component, kms, brokerComponent(broker, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS }), checkpoints],
    checks: [redis.check, brokerCheck(broker)],
  });
}
