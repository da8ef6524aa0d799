import { createAptosAdapter, createEvmAdapter, createSolanaAdapter } from '@wallet-fleet/chains';
import { createKmsCustody } from '@wallet-fleet/kms';
import { brokerCheck, brokerComponent, createBroker, createOutbox, outboxComponent } from '@wallet-fleet/messaging';
import {
  CLOUD_KMS_ENDPOINT,
  type Component,
  type Logger,
  type Service,
  createBreaker,
  createPeriodic,
  createPgPool,
  createRateLimiter,
  createServiceBase,
} from '@wallet-fleet/service-kit';
import type { WalletConfig } from './config.js';
import { createApprovalHandlers } from './handlers/approvals.js';
import { createChainHandlers } from './handlers/chain.js';
import { type KeyPoolHooks, createManagementHandlers } from './handlers/management.js';
import { createPolicyHandlers } from './handlers/policy.js';
import { createPolicyGate } from './policy/gate.js';
import { keyPoolMetrics } from './pool/metrics.js';
import { createKeyPoolRefiller } from './pool/refiller.js';
import { createApprovalStore } from './store/approval-store.js';
import { createKeyPoolStore } from './store/key-pool-store.js';
import { createPolicyStore } from './store/policy-store.js';
import { createTransferStore } from './store/transfer-store.js';
import { createWalletStore } from './store/wallet-store.js';
import { QUEUES, walletTopology } from './topology.js';

/**
 * The wallet service, wired but not started: migrations (unless `MIGRATE=false`), PostgreSQL,
 * Redis, KMS custody, the outbox relay, the broker with its consumers, and the HTTP probes.
 */
export function createWalletService(config: WalletConfig, logger: Logger): Service & { port(): number } {
  const base = createServiceBase({ name: 'wallet', config, logger, migrations: new URL('../migrations', import.meta.url) });
  const { pg, registry, schema } = base;
  const redis = base.redis();
  const custody = createKmsCustody({
    projectId: config.KMS_PROJECT_ID,
    locationId: config.KMS_LOCATION_ID,
    keyRingId: config.KMS_KEY_RING_ID,
    ...(config.KMS_ENDPOINT === CLOUD_KMS_ENDPOINT ? {} : { apiEndpoint: config.KMS_ENDPOINT }),
    callTimeoutMs: config.KMS_CALL_TIMEOUT_MS,
    logger,
    registry,
  });
  const broker = createBroker({ url: config.AMQP_URL, service: 'wallet', topology: walletTopology(), logger, registry });
  const outbox = createOutbox({ pool: pg.pool, schema, broker, logger, registry });
  const solana = createSolanaAdapter({ rpcUrl: config.SOLANA_RPC_URL });
  const evm = createEvmAdapter({ rpcUrl: config.EVM_RPC_URL });
  const aptos = createAptosAdapter({ nodeUrl: config.APTOS_NODE_URL });
  // One breaker per chain endpoint: a dead node fails reads fast instead of tying up consumers.
  const breaker = <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) => createBreaker(name, fn, { timeoutMs: 10_000 }, registry);
  const solBalance = breaker('solana-rpc', (a: string) => solana.getBalance(a));
  const evmBalance = breaker('evm-rpc', (a: string) => evm.getBalance(a));
  const aptBalance = breaker('aptos-node', (a: string) => aptos.getBalance(a));
  const store = createWalletStore(pg.pool, outbox);
  const policies = createPolicyStore(pg.pool, outbox);
  const poolMetrics = keyPoolMetrics(registry);
  const refiller = createKeyPoolRefiller({
    store: createKeyPoolStore(pg.pool),
    custody,
    kinds: (['ed25519', 'secp256k1'] as const).map((algorithm) => ({ algorithm, protectionLevel: custody.protectionLevelOf(algorithm) })),
    target: config.KEY_POOL_SIZE,
    limiter: createRateLimiter({
      redis: redis.client,
      prefix: 'kms-quota',
      limit: config.KEY_POOL_CREATES_PER_WINDOW,
      windowMs: config.KEY_POOL_RATE_WINDOW_MS,
    }),
    intervalMs: config.KEY_POOL_REFILL_INTERVAL_MS,
    concurrency: config.KEY_POOL_REFILL_CONCURRENCY,
    metrics: poolMetrics,
    logger,
  });
  const pool: KeyPoolHooks | undefined =
    config.KEY_POOL_SIZE > 0
      ? {
          taken: () => refiller.wake(),
          empty: (kind) => {
            poolMetrics.empty.inc({ algorithm: kind.algorithm, protection_level: kind.protectionLevel });
            logger.warn({ algorithm: kind.algorithm, protectionLevel: kind.protectionLevel }, 'key pool empty: creating a key synchronously');
            refiller.wake();
          },
        }
      : undefined;
  // Each replica prunes now and then; passes of two replicas at once delete disjoint rows or nothing.
  const spendPruner = createPeriodic({
    name: 'policy-spend-pruner',
    intervalMs: config.POLICY_SPEND_PRUNE_INTERVAL_MS,
    jitter: 0.1,
    run: async () => {
      const pruned = await policies.pruneSpend();
      if (pruned.rows > 0 || pruned.totals > 0) logger.info({ rows: pruned.rows, totals: pruned.totals }, 'pruned policy spend older than 25 h');
      return pruned;
    },
    onError: (err) => logger.warn({ err }, 'pruning policy spend failed; next pass later'),
  });
  const lockPg = createPgPool({ url: config.DATABASE_URL, schema, max: config.DATABASE_LOCK_POOL_MAX, applicationName: 'wallet-locks', logger });
  const transfers = createTransferStore(pg.pool, outbox, { pool: lockPg.pool, max: config.DATABASE_LOCK_POOL_MAX });
  const approvals = createApprovalStore(pg.pool, outbox);
  const chain = createChainHandlers({
    store,
    transfers,
    signer: custody,
    solana,
    evm,
    balances: { SOL: (a) => solBalance.fire(a), ETH: (a) => evmBalance.fire(a), APTOS: (a) => aptBalance.fire(a) },
    cache: redis.client,
    cacheTtlMs: config.BALANCE_CACHE_TTL_MS,
    limiter: createRateLimiter({ redis: redis.client, prefix: 'sign', limit: config.SIGN_RATE_PER_MINUTE, windowMs: 60_000 }),
    confirmTimeoutMs: config.CONFIRM_TIMEOUT_MS,
    policy: createPolicyGate(policies),
    chainIds: { ETH: config.EVM_CHAIN_ID, APTOS: config.APTOS_CHAIN_ID },
    approvals,
    approvalTtlMs: config.APPROVAL_TTL_MS,
  });
  broker.handleCommands(QUEUES.commands, {
    ...createManagementHandlers({ store, custody, ...(pool ? { pool } : {}) }),
    ...createPolicyHandlers({ policies }),
    ...chain.handlers,
    ...createApprovalHandlers({
      approvals,
      executors: chain.executors,
      lock: (name, waitMs, fn) => transfers.withKeyLock(name, waitMs, fn),
      // An execution may wait for a transfer's confirmation.
      lockWaitMs: config.CONFIRM_TIMEOUT_MS + 10_000,
    }),
  });

  const kms: Component = { name: 'kms', start: () => custody.ensureKeyRing(), stop: () => custody.close() };
  // Stopped in reverse: the relay ends after its pass in flight, then consumers end and drain (rows
  // they write to the outbox wait there for the next start), then the pools close.
  return base.assemble({
    components: [
      redis.component,
      kms,
      ...(pool ? [refiller] : []),
      spendPruner,
      // Stopped after the consumers, whose transfers hold its connections.
      lockPg.component,
      brokerComponent(broker, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS }),
      outboxComponent(outbox),
    ],
    checks: [redis.check, custody.check, brokerCheck(broker)],
  });
}
