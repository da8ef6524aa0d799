import assert from 'node:assert/strict';
import { ConfigError } from '@wallet-fleet/service-kit';
import { loadProvisioningConfig } from '../src/config.js';
import { QUEUES, provisioningTopology } from '../src/topology.js';

describe('provisioning configuration', () => {
  it('should default to the production retry policy (1 min doubling, capped at 30 min, 5 attempts) on port 8083', () => {
    const c = loadProvisioningConfig({});
    assert.deepEqual(
      [c.PROVISIONING_RETRY_INITIAL_DELAY_MS, c.PROVISIONING_RETRY_MAX_DELAY_MS, c.PROVISIONING_RETRY_MAX_ATTEMPTS, c.HTTP_PORT, c.DATABASE_SCHEMA],
      [60_000, 1_800_000, 5, 8083, 'provisioning'],
    );
    const chains = provisioningTopology(c).queues.find((q) => q.name === QUEUES.chains)!;
    assert.deepEqual(chains.retry, { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 1_800_000, factor: 2, jitter: 0.2 });
  });

  it('should refuse malformed values, naming every bad variable', () => {
    assert.throws(
      () => loadProvisioningConfig({ PROVISIONING_RETRY_MAX_ATTEMPTS: '0', PROVISIONING_STUCK_AFTER_MS: 'soon' }),
      (e) => e instanceof ConfigError && /PROVISIONING_RETRY_MAX_ATTEMPTS/.test(e.message) && /PROVISIONING_STUCK_AFTER_MS/.test(e.message),
    );
  });
});
