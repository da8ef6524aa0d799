import { envVar, loadConfig, retryConfigShape, serviceConfigShape } from '@wallet-fleet/service-kit';

/** The provisioning service's environment: the common variables plus its own. */
export const configShape = {
  ...serviceConfigShape({ httpPort: 8083, schema: 'provisioning', poolMax: 10 }),
  /**
   * Chain jobs: attempts in all, after the last one the chain is FAILED and dead-lettered; the first
   * delay doubles per attempt (±20 % jitter), capped at the max. Broker-side delay queues.
   */
  ...retryConfigShape('PROVISIONING', { maxAttempts: 5, maxAttemptsLimit: 25, initialDelayMs: 60_000, maxDelayMs: 1_800_000 }),
  /** A PENDING chain whose job has not been seen for this long (a lost or hung job) is enqueued again. */
  PROVISIONING_STUCK_AFTER_MS: envVar.int({ default: 600_000, min: 10, max: 86_400_000 }),
  PROVISIONING_SWEEP_INTERVAL_MS: envVar.int({ default: 60_000, min: 10, max: 3_600_000 }),
  /** Deadline of one `wallet.management.create` call. */
  PROVISIONING_WALLET_TIMEOUT_MS: envVar.int({ default: 10_000, min: 10, max: 600_000 }),
  /** Breaker around the wallet service: open for this long before one trial call. */
  PROVISIONING_BREAKER_RESET_MS: envVar.int({ default: 30_000, min: 10, max: 3_600_000 }),
  /** Calls in the 10 s window before the breaker judges the failure rate. */
  PROVISIONING_BREAKER_VOLUME: envVar.int({ default: 5, min: 1, max: 10_000 }),
  /** How long a job waits (without using up an attempt) when it finds the breaker open. */
  PROVISIONING_BREAKER_WAIT_MS: envVar.int({ default: 30_000, min: 1, max: 3_600_000 }),
  /** Chain jobs processed at once per instance (consumer prefetch). */
  PROVISIONING_CONCURRENCY: envVar.int({ default: 16, min: 1, max: 1000 }),
};

export type ProvisioningConfig = ReturnType<typeof loadProvisioningConfig>;

/** Throws ConfigError naming every bad variable. */
export const loadProvisioningConfig = (env?: NodeJS.ProcessEnv) => loadConfig(configShape, env);
