import { baseConfigShape, envVar, loadConfig } from '@wallet-fleet/service-kit';

const int = (def: number, min: number, max: number) => envVar.int({ min, max, default: def });

/** The provisioning service's environment: the common variables plus its own. */
const configShape = {
  ...baseConfigShape,
  HTTP_PORT: envVar.port(8083),
  DATABASE_SCHEMA: envVar.identifier('provisioning'),
  DATABASE_POOL_MAX: int(10, 1, 200),
  /** Attempts per chain job, the first included; after the last one the chain is FAILED and dead-lettered. */
  PROVISIONING_RETRY_MAX_ATTEMPTS: int(5, 1, 25),
  /** First retry delay; doubles per attempt (±20 % jitter), capped at the max. Broker-side delay queues. */
  PROVISIONING_RETRY_INITIAL_DELAY_MS: int(60_000, 1, 3_600_000),
  PROVISIONING_RETRY_MAX_DELAY_MS: int(1_800_000, 1, 86_400_000),
  /** A PENDING chain whose job has not been seen for this long (a lost or hung job) is enqueued again. */
  PROVISIONING_STUCK_AFTER_MS: int(600_000, 10, 86_400_000),
  PROVISIONING_SWEEP_INTERVAL_MS: int(60_000, 10, 3_600_000),
  /** Deadline of one `wallet.management.create` call. */
  PROVISIONING_WALLET_TIMEOUT_MS: int(10_000, 10, 600_000),
  /** Breaker around the wallet service: open for this long before one trial call. */
  PROVISIONING_BREAKER_RESET_MS: int(30_000, 10, 3_600_000),
  /** Calls in the 10 s window before the breaker judges the failure rate. */
  PROVISIONING_BREAKER_VOLUME: int(5, 1, 10_000),
  /** How long a job waits (without using up an attempt) when it finds the breaker open. */
  PROVISIONING_BREAKER_WAIT_MS: int(30_000, 1, 3_600_000),
  /** Chain jobs processed at once per instance (consumer prefetch). */
  PROVISIONING_CONCURRENCY: int(16, 1, 1000),
};

export type ProvisioningConfig = ReturnType<typeof loadProvisioningConfig>;

/** Throws ConfigError naming every bad variable. */
export function loadProvisioningConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(configShape, env);
}
