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
  /**
   * Checkpoints: the chain head signed with the audit service's own Ed25519 key in Cloud KMS (key
   * `AUDIT_CHECKPOINT_KEY_ID` in the key ring below), every interval when the chain grew.
   * `KMS_ENDPOINT` is `cloudkms.googleapis.com` (Google Cloud KMS) or, in development mode only, the
   * host:port of the KMS emulator; as for the wallet service, unset is a configuration error.
   */
  AUDIT_CHECKPOINT_INTERVAL_MS: envVar.int({ default: 300_000, min: 1000, max: 86_400_000 }),
  AUDIT_CHECKPOINT_KEY_ID: envVar.string('audit-checkpoints'),
  KMS_PROJECT_ID: envVar.string('wallet-fleet-local'),
  KMS_LOCATION_ID: envVar.string('global'),
  KMS_KEY_RING_ID: envVar.string('wallets'),
  KMS_ENDPOINT: envVar.kmsEndpoint(),
  KMS_CALL_TIMEOUT_MS: envVar.int({ default: 5000, min: 100, max: 60_000 }),
};

export type AuditConfig = ReturnType<typeof loadAuditConfig>;

/** Throws ConfigError naming every bad variable. */
export const loadAuditConfig = (env?: NodeJS.ProcessEnv) => loadConfig(configShape, env);
