import { fileURLToPath } from 'node:url';
import { createKmsCustody } from '@wallet-fleet/kms';
import { brokerCheck, createBroker, createOutbox } from '@wallet-fleet/messaging';
import {
  type Component,
  type Logger,
  type Service,
  createHttpServer,
  createMetrics,
  createPgPool,
  createRedis,
  createService,
  migrationsComponent,
} from '@wallet-fleet/service-kit';
import type { WalletConfig } from './config.js';
import { createManagementHandlers } from './handlers/management.js';
import { QUEUES, walletTopology } from './topology.js';

const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

/**
 * The wallet service, wired but not started: migrations (unless `MIGRATE=false`), PostgreSQL,
 * Redis, KMS custody, the outbox relay, the broker with its consumers, and the HTTP probes.
 */
export function createWalletService(config: WalletConfig, logger: Logger): Service & { port(): number } {
  const schema = config.DATABASE_SCHEMA;
  const registry = createMetrics('wallet');
  const pg = createPgPool({ url: config.DATABASE_URL, schema, max: config.DATABASE_POOL_MAX, applicationName: 'wallet', logger });
  const redis = createRedis({ url: config.REDIS_URL, keyPrefix: `wallet:${schema}:`, logger, connectionName: 'wallet' });
  const custody = createKmsCustody({
    projectId: config.KMS_PROJECT_ID,
    locationId: config.KMS_LOCATION_ID,
    keyRingId: config.KMS_KEY_RING_ID,
    ...(config.KMS_ENDPOINT ? { apiEndpoint: config.KMS_ENDPOINT } : {}),
    callTimeoutMs: config.KMS_CALL_TIMEOUT_MS,
    logger,
    registry,
  });
  const broker = createBroker({ url: config.AMQP_URL, service: 'wallet', topology: walletTopology(), logger, registry });
  const outbox = createOutbox({ pool: pg.pool, schema, broker, logger, registry });
  broker.handleCommands(QUEUES.commands, createManagementHandlers({ pool: pg.pool, custody, outbox }));

  const migrations = migrationsComponent({ enabled: config.MIGRATE, databaseUrl: config.DATABASE_URL, schema, dir: MIGRATIONS, logger });
  const kms: Component = { name: 'kms', start: () => custody.ensureKeyRing(), stop: () => custody.close() };
  const brokerComponent: Component = {
    name: 'broker',
    start: () => broker.start(),
    stop: () => broker.stop({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }),
  };
  const relay: Component = { name: 'outbox', start: () => outbox.start(), stop: () => outbox.stop() };
  const http = createHttpServer({
    port: config.HTTP_PORT,
    registry,
    logger,
    checks: [
      pg.check,
      redis.check,
      custody.check,
      brokerCheck(broker),
    ],
  });
  // Stopped in reverse: the relay ends after its pass in flight, then consumers end and drain (rows
  // they write to the outbox wait there for the next start), then the pools close.
  const service = createService({
    name: 'wallet',
    logger,
    components: [http, migrations, pg.component, redis.component, kms, brokerComponent, relay],
    stopTimeoutMs: config.SHUTDOWN_TIMEOUT_MS + 2000,
  });
  return Object.assign(service, { port: () => http.port() });
}
