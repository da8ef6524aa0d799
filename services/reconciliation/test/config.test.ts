import assert from 'node:assert/strict';
import { ConfigError } from '@wallet-fleet/service-kit';
import { loadReconciliationConfig } from '../src/config.js';

describe('reconciliation config', () => {
  it('should default to a pass every 10 minutes over deposits pending 15 minutes, failing them after an hour', () => {
    const c = loadReconciliationConfig({});
    assert.deepEqual(
      [c.RECONCILE_INTERVAL_MS, c.RECONCILE_PENDING_AFTER_MS, c.RECONCILE_MAX_AGE_MS, c.HTTP_PORT, c.DATABASE_SCHEMA, c.OUTBOX_SCHEMAS],
      [600_000, 900_000, 3_600_000, 8085, 'reconciliation', ['wallet', 'provisioning', 'webhooks', 'reconciliation']],
    );
  });

  it('should name every bad variable at once', () => {
    assert.throws(
      () => loadReconciliationConfig({ OUTBOX_SCHEMAS: 'wallet,Bad-Name', RECONCILE_CONCURRENCY: '0', RECONCILE_MAX_AGE_MS: 'soon' }),
      (e: unknown) =>
        e instanceof ConfigError && ['OUTBOX_SCHEMAS', 'RECONCILE_CONCURRENCY', 'RECONCILE_MAX_AGE_MS'].every((v) => e.problems.some((p) => p.variable === v)),
    );
  });

  it('should allow turning the outbox sweep off with an empty list', () => {
    assert.deepEqual(loadReconciliationConfig({ OUTBOX_SCHEMAS: '' }).OUTBOX_SCHEMAS, []);
  });
});
