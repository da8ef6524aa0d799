import { baseConfigShape, envVar, loadConfig } from '@wallet-fleet/service-kit';

const int = (def: number, min: number, max: number) => envVar.int({ min, max, default: def });

/** The audit service's environment: the common variables plus its own. */
const configShape = {
  ...baseConfigShape,
  HTTP_PORT: envVar.port(8081),
  DATABASE_SCHEMA: envVar.identifier('audit'),
  /** Events written per INSERT at most; more per batch means fewer round trips under load. */
  AUDIT_BATCH_MAX: int(1000, 1, 5000),
  /** How long a partial batch waits for more events before it is written (ms). */
  AUDIT_BATCH_WAIT_MS: int(5, 0, 1000),
  /** Broker-side retries of events whose storing failed transiently (database down). */
  AUDIT_RETRY_MAX_ATTEMPTS: int(8, 1, 50),
  AUDIT_RETRY_INITIAL_DELAY_MS: int(1000, 1, 3_600_000),
  AUDIT_RETRY_MAX_DELAY_MS: int(300_000, 1, 86_400_000),
  DATABASE_POOL_MAX: int(10, 1, 200),
  /** `wallet.audit.verify` walks the whole chain: at most this many runs per minute, fleet-wide (Redis). */
  AUDIT_VERIFY_PER_MINUTE: int(10, 1, 10_000),
};

export type AuditConfig = ReturnType<typeof loadAuditConfig>;

/** Throws ConfigError naming every bad variable. */
export function loadAuditConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(configShape, env);
}
