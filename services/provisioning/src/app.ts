import { brokerCheck, brokerComponent, createBroker, createOutbox, outboxComponent } from '@wallet-fleet/messaging';
import { type Component, type Logger, type Service, createBreaker, createServiceBase } from '@wallet-fleet/service-kit';
import type { ProvisioningConfig } from './config.js';
import { createApprovalHandlers } from './handlers/approval.js';
import { createChainJobHandler } from './handlers/chain-job.js';
import { createProvisioningMetrics } from './metrics.js';
import type { CreateWallet } from './ports.js';
import { createProvisioningStore } from './store/provisioning-store.js';
import { createSweep } from './sweep.js';
import { QUEUES, provisioningTopology } from './topology.js';

/**
 * The provisioning service, wired but not started: migrations (unless `MIGRATE=false`),
 * PostgreSQL, the outbox relay, the broker with its consumers, the stuck-job sweep and the HTTP
 * probes. `main.ts` runs it; tests start it in-process.
 */
export function createProvisioningService(config: ProvisioningConfig, logger: Logger): Service & { port(): number; sweep(): Promise<number> } {
  const base = createServiceBase({ name: 'provisioning', config, logger, migrations: new URL('../migrations', import.meta.url) });
  const { pg, registry, schema } = base;
  const metrics = createProvisioningMetrics(registry);
  const broker = createBroker({ url: config.AMQP_URL, service: 'provisioning', topology: provisioningTopology(config), logger, registry });
  const outbox = createOutbox({ pool: pg.pool, schema, broker, logger, registry });

  // The wallet service behind a breaker: while it is down, jobs are parked instead of each one
  // waiting for its own timeout and using up an attempt. Permanent answers (validation,
  // idempotency conflict) are answers, not outages, and do not trip it.
  const walletCreate = createBreaker(
    'wallet-service',
    (req: Parameters<CreateWallet>[0]) => broker.request('wallet.management.create', req, { timeoutMs: config.PROVISIONING_WALLET_TIMEOUT_MS }),
    {
      // A little over the request deadline: the request's own TIMEOUT is the one that answers.
      timeoutMs: config.PROVISIONING_WALLET_TIMEOUT_MS + 1000,
      resetTimeoutMs: config.PROVISIONING_BREAKER_RESET_MS,
      volumeThreshold: config.PROVISIONING_BREAKER_VOLUME,
    },
    registry,
  );
  const store = createProvisioningStore(pg.pool, outbox);
  const approvals = createApprovalHandlers({ store, leaseMs: config.PROVISIONING_STUCK_AFTER_MS });
  broker.handleEvents(QUEUES.approvals, { 'kyc.approved': approvals['kyc.approved'] });
  broker.handleEvents(QUEUES.chains, {
    'provisioning.chain.requested': createChainJobHandler({
      store,
      createWallet: (req) => walletCreate.fire(req),
      metrics,
      maxAttempts: config.PROVISIONING_RETRY_MAX_ATTEMPTS,
      retryMaxDelayMs: config.PROVISIONING_RETRY_MAX_DELAY_MS,
      stuckAfterMs: config.PROVISIONING_STUCK_AFTER_MS,
      breakerWaitMs: config.PROVISIONING_BREAKER_WAIT_MS,
    }),
  });
  broker.handleCommands(QUEUES.commands, {
    'wallet.provisioning.provision': approvals['wallet.provisioning.provision'],
    'wallet.provisioning.status': approvals['wallet.provisioning.status'],
  });

  // Stopped after the broker: handlers draining there may still call the wallet service.
  const walletBreaker: Component = { name: 'wallet-service-breaker', start: async () => undefined, stop: async () => walletCreate.shutdown() };
  const sweep = createSweep({
    store,
    logger,
    intervalMs: config.PROVISIONING_SWEEP_INTERVAL_MS,
    leaseMs: config.PROVISIONING_STUCK_AFTER_MS,
  });
  // Stopped in reverse: the sweep, then the relay after its pass in flight, then consumers end and
  // drain (rows they write to the outbox wait there for the next start), then the pool closes.
  const service = base.assemble({
    components: [walletBreaker, brokerComponent(broker, { timeoutMs: config.SHUTDOWN_TIMEOUT_MS }), outboxComponent(outbox), sweep],
    checks: [brokerCheck(broker)],
  });
  return Object.assign(service, { sweep: () => sweep.runOnce() });
}
