import type { Logger } from '@wallet-fleet/service-kit';
import { createReconciliationService } from '../src/app.js';
import { loadReconciliationConfig } from '../src/config.js';

/**
 * A reconciliation service (not started) as the fleet's `reconciliation` broker user at `amqpUrl`, in
 * the schema of `schemaEnv`, on free ports, whose passes the test starts (the timer waits an hour);
 * deposits are looked at whatever their age. `env` adds or overrides variables.
 */
export function testReconciliation(amqpUrl: string, schemaEnv: Record<string, string>, logger: Logger, env: Record<string, string> = {}) {
  return createReconciliationService(
    loadReconciliationConfig({
      AMQP_URL: amqpUrl,
      ...schemaEnv,
      HTTP_PORT: '0',
      ADMIN_HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
      RECONCILE_INITIAL_DELAY_MS: '3600000',
      RECONCILE_PENDING_AFTER_MS: '0',
      ...env,
    }),
    logger,
  );
}
