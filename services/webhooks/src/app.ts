import { brokerCheck, brokerComponent, createBroker, createOutbox, outboxComponent } from '@wallet-fleet/messaging';
import { type Component, type Logger, type Service, createBreaker, createPgPool, createRateLimiter, createServiceBase } from '@wallet-fleet/service-kit';
import { type ChainChecker, createChainChecker } from './chain-check.js';
import type { WebhooksConfig } from './config.js';
import { createIntakeHandler } from './handlers/intake.js';
import { createCreditRecheck, createDepositAttempt, createDepositHandler, createReversalRecheck } from './handlers/processing.js';
import { createReconcileHandlers } from './handlers/reconcile.js';
import { createWalletCreatedHandler } from './handlers/wallets.js';
import { createIntakeRouter } from './http/intake-routes.js';
import { createJobPublisher } from './job-publisher.js';
import { createWebhooksMetrics } from './metrics.js';
import { createReplayGuard } from './replay-guard.js';
import { createRepublisher } from './republisher.js';
import { createSignatureVerifier } from './signature.js';
import { createDepositStore } from './store/deposit-store.js';
import { createReconcileStore } from './store/reconcile-store.js';
import { QUEUES, webhooksTopology } from './topology.js';

/**
 * The webhooks service, wired but not started: migrations (unless `MIGRATE=false`), PostgreSQL,
 * the outbox relay, the broker, and one HTTP server with the probes; with the `intake` role also
 * Redis (rate limit), `POST /webhooks/deposits` and the republisher of unconfirmed deliveries, with the `processing` role the deposit and
 * wallet consumers and the `wallet.deposits.*` operations (`WEBHOOKS_ROLES`, both by default).
 */
export function createWebhooksService(config: WebhooksConfig, logger: Logger): Service & { port(): number } {
  const base = createServiceBase({ name: 'webhooks', config, logger, migrations: new URL('../migrations', import.meta.url) });
  const { pg, registry, schema } = base;
  const metrics = createWebhooksMetrics(registry);
  // A bulkhead: the consumer's transactions (prefetch 32, several statements each) share `pg`; the
  // intake (on the path of every 200), the republisher and the relay have their own.
  const edgePg = createPgPool({ url: config.DATABASE_URL, schema, max: config.DATABASE_INTAKE_POOL_MAX, applicationName: 'webhooks-intake', logger });
  const retry = {
    maxAttempts: config.DEPOSIT_MAX_ATTEMPTS,
    initialDelayMs: config.DEPOSIT_RETRY_INITIAL_MS,
    maxDelayMs: Math.max(config.DEPOSIT_RETRY_MAX_MS, config.DEPOSIT_RETRY_INITIAL_MS),
  };
  const broker = createBroker({ url: config.AMQP_URL, service: 'webhooks', topology: webhooksTopology(retry), logger, registry });
  const outbox = createOutbox({ pool: edgePg.pool, schema, broker, logger, registry });
  const chainChecker = createChainChecker({
    solanaRpcUrl: config.SOLANA_RPC_URL,
    evmRpcUrl: config.EVM_RPC_URL,
    evmFinality: config.EVM_FINALITY,
    timeoutMs: config.CHAIN_RPC_TIMEOUT_MS,
  });
  // One breaker per RPC endpoint: while a node is down, deposits fail fast into the retry queues
  // instead of each waiting out its timeout. Not-retryable answers (bad hash, Aptos) do not count.
  const breakers = {
    SOL: createBreaker('solana-rpc', (d: Parameters<ChainChecker['check']>[0]) => chainChecker.check(d), breakerOptions(config), registry),
    ETH: createBreaker('evm-rpc', (d: Parameters<ChainChecker['check']>[0]) => chainChecker.check(d), breakerOptions(config), registry),
  };
  const chains: ChainChecker = {
    check: (d) => (d.chain === 'SOL' || d.chain === 'ETH' ? breakers[d.chain].fire(d) : chainChecker.check(d)),
    atChainFinality: chainChecker.atChainFinality,
  };
  const processing = config.WEBHOOKS_ROLES.has('processing');
  const intake = config.WEBHOOKS_ROLES.has('intake');
  if (processing) {
    const deposits = createDepositStore(pg.pool, outbox);
    const tokenAllowlist = config.DEPOSIT_TOKEN_ALLOWLIST;
    broker.handleEvents(QUEUES.deposits, {
      'deposit.received': createDepositHandler({
        store: deposits,
        chains,
        tokenAllowlist,
        maxAttempts: config.DEPOSIT_MAX_ATTEMPTS,
        rpcRetryDelayFactor: config.DEPOSIT_RPC_RETRY_FACTOR,
      }),
    });
    broker.handleCommands(
      QUEUES.commands,
      createReconcileHandlers(
        {
          deposits,
          reconcile: createReconcileStore(pg.pool, {
            recheckWindowSeconds: config.DEPOSIT_RECHECK_WINDOW_SECONDS,
            // Credits made at the chain's own finality cannot be reorganised away: not re-checked.
            recheckChains: (['SOL', 'ETH'] as const).filter((c) => !chains.atChainFinality(c)),
          }),
        },
        createDepositAttempt({ store: deposits, chains, tokenAllowlist }),
        {
          credit: createCreditRecheck({
            store: deposits,
            chains,
            reverseAfterMs: config.DEPOSIT_REVERSE_AFTER_SECONDS * 1000,
            onReversed: (chain) => metrics.reversed.inc({ chain }),
          }),
          reversal: createReversalRecheck({ store: deposits, chains }),
        },
      ),
    );
    broker.handleEvents(QUEUES.wallets, { 'wallet.created': createWalletCreatedHandler(deposits) });
  }

  // Only the intake role has Redis (its rate limit, its replay guard) and routes.
  const redis = intake ? base.redis() : undefined;
  let running = false;
  const gate: Component = {
    name: 'intake-gate',
    start: async () => undefined,
    stop: async () => undefined,
    onServiceState: (state) => {
      running = state === 'running';
    },
  };
  const intakeLog = logger.child({ component: 'intake' });
  const edgeDeposits = createDepositStore(edgePg.pool, outbox);
  const jobs = intake ? createJobPublisher({ broker, store: edgeDeposits, logger }) : undefined;
  const republisher = jobs
    ? createRepublisher({
        store: edgeDeposits,
        jobs,
        graceMs: config.DEPOSIT_REPUBLISH_AFTER_MS,
        intervalMs: Math.max(50, Math.min(5000, Math.round(config.DEPOSIT_REPUBLISH_AFTER_MS / 2))),
        republished: metrics.republished,
        logger,
      })
    : undefined;
  const routes =
    redis && jobs
      ? createIntakeRouter({
          intake: createIntakeHandler({
            store: edgeDeposits,
            jobs,
            verifier: createSignatureVerifier(config.WEBHOOK_SECRETS ?? []),
            limiter: createRateLimiter({ redis: redis.client, prefix: 'senders', limit: config.WEBHOOK_RATE_PER_MINUTE, windowMs: 60_000 }),
            replay: createReplayGuard(redis.client),
            degraded: (what, err) => intakeLog.warn({ err, what }, 'redis unavailable; letting the delivery through without it'),
          }),
          accepting: () => running,
          logger,
          maxBodyBytes: config.WEBHOOK_MAX_BODY_BYTES,
          deliveries: metrics.deliveries,
        })
      : undefined;

  // The HTTP server starts first (probes answer while the rest starts) but readiness waits for the
  // service to run; a delivery arriving before then gets 503 from a pool or broker not yet up.
  // Stopped in reverse: the relay ends after its pass, consumers drain, the pools close, HTTP last.
  return base.assemble({
    routes,
    components: [
      gate,
      edgePg.component,
      ...(redis ? [redis.component] : []),
      brokerComponent(broker, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS }),
      outboxComponent(outbox),
      ...(republisher ? [republisher] : []),
    ],
    checks: [...(redis ? [redis.check] : []), brokerCheck(broker)],
  });
}

function breakerOptions(config: WebhooksConfig) {
  // The timeout sits above the per-call RPC timeout: a check makes up to three calls.
  return { timeoutMs: config.CHAIN_RPC_TIMEOUT_MS * 3 + 1000 };
}
