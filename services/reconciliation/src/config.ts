import { baseConfigShape, envVar, loadConfig } from '@wallet-fleet/service-kit';
import { z } from 'zod';

const int = (def: number, min: number, max: number) => envVar.int({ min, max, default: def });

/** Comma-separated schema names (lower-case SQL identifiers); empty = none. */
const schemaList = (def: string) =>
  z
    .string()
    .default(def)
    .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
    .refine((list) => list.every((s) => /^[a-z_][a-z0-9_]{0,62}$/.test(s)), 'comma-separated lower-case schema names');

/** The reconciliation service's environment: the common variables plus its own. */
const configShape = {
  ...baseConfigShape,
  HTTP_PORT: envVar.port(8085),
  DATABASE_SCHEMA: envVar.identifier('reconciliation'),
  DATABASE_POOL_MAX: int(5, 2, 100),
  /** Time between passes (each replica's timer; the lock and the last run's time keep it to one pass per interval fleet-wide). */
  RECONCILE_INTERVAL_MS: int(10 * 60_000, 1000, 24 * 3_600_000),
  /** First pass this long after start (jittered), so a rolling restart does not start passes at once. */
  RECONCILE_INITIAL_DELAY_MS: int(30_000, 0, 24 * 3_600_000),
  /** A deposit still pending this long after it was accepted is re-validated. */
  RECONCILE_PENDING_AFTER_MS: int(15 * 60_000, 0, 30 * 86_400_000),
  /** A deposit still not found or not confirmed this long after it was accepted is failed. */
  RECONCILE_MAX_AGE_MS: int(60 * 60_000, 1000, 365 * 86_400_000),
  /** Deposits re-validated at once. */
  RECONCILE_CONCURRENCY: int(8, 1, 256),
  /** Deposits looked at per pass at most (the rest wait for the next pass). */
  RECONCILE_MAX_PER_PASS: int(10_000, 1, 1_000_000),
  /** Deadline of one request to the webhooks service (a re-validation may wait on a chain RPC). */
  RECONCILE_REQUEST_TIMEOUT_MS: int(30_000, 100, 600_000),
  /**
   * The pass lock is a PostgreSQL advisory lock held by a transaction that the holder touches every
   * few seconds; a holder that stops doing so (frozen, cut off) loses it after this long, one that
   * crashed loses it when its connection closes.
   */
  RECONCILE_LOCK_TIMEOUT_MS: int(120_000, 1000, 3_600_000),
  /** Schemas (same database) whose outbox rows left behind by their relay are re-published. */
  OUTBOX_SCHEMAS: schemaList('wallet,provisioning,webhooks,reconciliation'),
  /** An outbox row older than this was left behind (its service's relay publishes within a second). */
  OUTBOX_STALE_AFTER_MS: int(60_000, 0, 86_400_000),
};

export type ReconciliationConfig = ReturnType<typeof loadReconciliationConfig>;

/** Throws ConfigError naming every bad variable. */
export function loadReconciliationConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(configShape, env);
}
