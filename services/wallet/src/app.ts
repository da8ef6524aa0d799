import { fileURLToPath } from 'node:url';
import { createEvmAdapter, createSolanaAdapter } from '@wallet-fleet/chains';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { createKmsCustody } from '@wallet-fleet/kms';
import { brokerCheck, createBroker, createOutbox } from '@wallet-fleet/messaging';
import {
  type Component,
  type Logger,
  type Service,
  createHttpServer,
  createMetrics,
  createBreaker,
  createPgPool,
  createRateLimiter,
  createRedis,
  createService,
  migrationsComponent,
} from '@wallet-fleet/service-kit';
import type { WalletConfig } from './config.js';
import { createChainHandlers } from './handlers/chain.js';
import { createManagementHandlers } from './handlers/management.js';
import { createTransferStore } from './store/transfer-store.js';
import { createWalletStore } from './store/wallet-store.js';
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
  const solana = createSolanaAdapter({ rpcUrl: config.SOLANA_RPC_URL });
  const evm = createEvmAdapter({ rpcUrl: config.EVM_RPC_URL });
  // One breaker per chain endpoint: a dead node fails reads fast instead of tying up consumers.
  const breaker = <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) =>
    createBreaker(name, fn, { timeoutMs: 10_000 }, registry);
  const solBalance = breaker('solana-rpc', (a: string) => solana.getBalance(a));
  const evmBalance = breaker('evm-rpc', (a: string) => evm.getBalance(a));
  const aptBalance = breaker('aptos-node', (a: string) => aptosBalance(config.APTOS_NODE_URL, a));
  const store = createWalletStore(pg.pool, outbox);
  broker.handleCommands(QUEUES.commands, {
    ...createManagementHandlers({ store, custody }),
    ...createChainHandlers({
      store,
      transfers: createTransferStore(pg.pool, outbox),
      signer: custody,
      solana,
      balances: { SOL: (a) => solBalance.fire(a), ETH: (a) => evmBalance.fire(a), APTOS: (a) => aptBalance.fire(a) },
      cache: redis.client,
      cacheTtlMs: config.BALANCE_CACHE_TTL_MS,
      limiter: createRateLimiter({ redis: redis.client, prefix: 'sign', limit: config.SIGN_RATE_PER_MINUTE, windowMs: 60_000 }),
      confirmTimeoutMs: config.CONFIRM_TIMEOUT_MS,
    }),
  });

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

/**
 * Octas held by an Aptos account, from the node's REST API (`/accounts/{a}/balance/{asset}`). An
 * account the chain has never seen holds 0. Throws UNAVAILABLE when the node cannot be reached.
 */
async function aptosBalance(nodeUrl: string, address: string): Promise<bigint> {
  let res: Response;
  try {
    res = await fetch(`${nodeUrl.replace(/\/$/, '')}/accounts/${address}/balance/0x1::aptos_coin::AptosCoin`, {
      signal: AbortSignal.timeout(5000),
    });
  } catch (e) {
    throw new FleetError(ErrorCode.UNAVAILABLE, 'aptos node unreachable', { cause: e });
  }
  if (res.status === 404) return 0n;
  if (!res.ok) throw new FleetError(ErrorCode.UNAVAILABLE, `aptos node answered ${res.status}`);
  return BigInt(String(await res.json()));
}
