import { adminConfigShape, envVar, isIdentifier, loadConfig, serviceConfigShape } from '@wallet-fleet/service-kit';

/** The reconciliation service's environment: the common variables plus its own. */
export const configShape = {
  ...serviceConfigShape({ httpPort: 8085, schema: 'reconciliation', poolMax: 5 }),
  /** `GET /runs` and `POST /runs` (a pass now): on 127.0.0.1:9085 by default, not on HTTP_PORT. */
  ...adminConfigShape({ port: 9085 }),
  /** At least 2: a pass holds one connection for its lock transaction while it works on another. */
  DATABASE_POOL_MAX: envVar.int({ default: 5, min: 2, max: 100 }),
  /** Time between passes (each replica's timer; the lock and the last run's time keep it to one pass per interval fleet-wide). */
  RECONCILE_INTERVAL_MS: envVar.int({ default: 10 * 60_000, min: 1000, max: 24 * 3_600_000 }),
  /** First pass this long after start (jittered), so a rolling restart does not start passes at once. */
  RECONCILE_INITIAL_DELAY_MS: envVar.int({ default: 30_000, min: 0, max: 24 * 3_600_000 }),
  /** A deposit still pending this long after it was accepted is re-validated. */
  RECONCILE_PENDING_AFTER_MS: envVar.int({ default: 15 * 60_000, min: 0, max: 30 * 86_400_000 }),
  /** A deposit still not found or not confirmed this long after it was accepted is failed. */
  RECONCILE_MAX_AGE_MS: envVar.int({ default: 60 * 60_000, min: 1000, max: 365 * 86_400_000 }),
  /** Deposits re-validated at once. */
  RECONCILE_CONCURRENCY: envVar.int({ default: 8, min: 1, max: 256 }),
  /** Open deposits looked at per pass at most (the rest wait for the next pass). */
  RECONCILE_MAX_PER_PASS: envVar.int({ default: 10_000, min: 1, max: 1_000_000 }),
  /**
   * Recent credits and reversals re-checked on chain per pass at most, after the open work and apart
   * from its budget (the rest wait for the next pass); 0: none.
   */
  RECONCILE_MAX_RECHECKS_PER_PASS: envVar.int({ default: 2000, min: 0, max: 1_000_000 }),
  /** Deadline of one request to the webhooks service (a re-validation may wait on a chain RPC). */
  RECONCILE_REQUEST_TIMEOUT_MS: envVar.int({ default: 30_000, min: 100, max: 600_000 }),
  /**
   * The pass lock is a PostgreSQL advisory lock held by a transaction that the holder touches every
   * few seconds; a holder that stops doing so (frozen, cut off) loses it after this long, one that
   * crashed loses it when its connection closes.
   */
  RECONCILE_LOCK_TIMEOUT_MS: envVar.int({ default: 120_000, min: 1000, max: 3_600_000 }),
  /** Schemas (same database) whose outbox rows left behind are counted and reported (their own relays publish them); empty = none. */
  OUTBOX_SCHEMAS: envVar.list({
    default: 'wallet,provisioning,webhooks,reconciliation',
    each: isIdentifier,
    message: 'comma-separated lower-case schema names',
  }),
  /** An outbox row older than this was left behind (its service's relay publishes within a second). */
  OUTBOX_STALE_AFTER_MS: envVar.int({ default: 60_000, min: 0, max: 86_400_000 }),
};

export type ReconciliationConfig = ReturnType<typeof loadReconciliationConfig>;

/** Throws ConfigError naming every bad variable. */
export const loadReconciliationConfig = (env?: NodeJS.ProcessEnv) => loadConfig(configShape, env);
