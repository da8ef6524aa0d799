import { envVar, loadConfig, retryConfigShape, serviceConfigShape } from '@wallet-fleet/service-kit';

/** The audit service's environment: the common variables plus its own. */
export const configShape = {
  ...serviceConfigShape({ httpPort: 8081, schema: 'audit', poolMax: 10 }),
  /** Events written per INSERT at most; more per batch means fewer round trips under load. */
  AUDIT_BATCH_MAX: envVar.int({ default: 1000, min: 1, max: 5000 }),
  /** How long a partial batch waits for more events before it is written (ms). */
  AUDIT_BATCH_WAIT_MS: envVar.int({ default: 5, min: 0, max: 1000 }),
  /** Broker-side retries of events whose storing failed transiently (database down). */
  ...retryConfigShape('AUDIT', { maxAttempts: 8, maxAttemptsLimit: 50, initialDelayMs: 1000, maxDelayMs: 300_000 }),
  /** `wallet.audit.verify` walks the whole chain: at most this many runs per minute, fleet-wide (Redis). */
  AUDIT_VERIFY_PER_MINUTE: envVar.int({ default: 10, min: 1, max: 10_000 }),
};

export type AuditConfig = ReturnType<typeof loadAuditConfig>;

/** Throws ConfigError naming every bad variable. */
export const loadAuditConfig = (env?: NodeJS.ProcessEnv) => loadConfig(configShape, env);
