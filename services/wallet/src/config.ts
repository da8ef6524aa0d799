import { envVar, loadConfig, serviceConfigShape } from '@wallet-fleet/service-kit';

/**
 * The wallet service's environment. `KMS_ENDPOINT` is `cloudkms.googleapis.com` (Google Cloud KMS
 * with the machine's application default credentials) or `host:port` of the KMS emulator, reached
 * over plaintext gRPC: development mode only, like chain RPC URLs over plain http (see
 * `envVar.kmsEndpoint`, `envVar.chainUrl`).
 */
export const configShape = {
  ...serviceConfigShape({ httpPort: 8082, schema: 'wallet', poolMax: 10 }),
  KMS_PROJECT_ID: envVar.string('wallet-fleet-local'),
  KMS_LOCATION_ID: envVar.string('global'),
  KMS_KEY_RING_ID: envVar.string('wallets'),
  KMS_ENDPOINT: envVar.kmsEndpoint(),
  KMS_CALL_TIMEOUT_MS: envVar.int({ default: 5000, min: 100, max: 60_000 }),
  SOLANA_RPC_URL: envVar.chainUrl('http://127.0.0.1:8899'),
  EVM_RPC_URL: envVar.chainUrl('http://127.0.0.1:8545'),
  APTOS_NODE_URL: envVar.chainUrl('http://127.0.0.1:8080/v1'),
  /** The only EVM chain id signed for (default: anvil's 31337; Ethereum mainnet is 1). */
  EVM_CHAIN_ID: envVar.int({ default: 31337, min: 1, max: 2 ** 53 - 1 }),
  /** The only Aptos chain id signed for (default: a local testnet's 4; mainnet is 1). */
  APTOS_CHAIN_ID: envVar.int({ default: 4, min: 1, max: 255 }),
  /** How long a native balance read from a chain is served from Redis (our own transfers invalidate it). */
  BALANCE_CACHE_TTL_MS: envVar.int({ default: 5000, min: 1, max: 3_600_000 }),
  /**
   * Connections (a pool of their own) that hold the advisory locks of keyed transfers and approval
   * executions: at most this many run at once per replica, the others wait (within their lock wait)
   * without holding a DATABASE_POOL_MAX connection. Keep it well below DATABASE_POOL_MAX: each one
   * running uses up to two connections of the main pool at a time.
   */
  DATABASE_LOCK_POOL_MAX: envVar.int({ default: 4, min: 1, max: 100 }),
  /** How long a transfer waits for its confirmation before answering TIMEOUT. */
  CONFIRM_TIMEOUT_MS: envVar.int({ default: 30_000, min: 1000, max: 600_000 }),
  /** How long a request above an approval threshold waits for its approvers (then it is expired). */
  APPROVAL_TTL_MS: envVar.int({ default: 86_400_000, min: 1000, max: 30 * 86_400_000 }),
  /** Signing and transfer requests per user per minute (Redis, fleet-wide). */
  SIGN_RATE_PER_MINUTE: envVar.int({ default: 60, min: 1, max: 100_000 }),
  /** Ready KMS keys kept unassigned per kind (Ed25519 for SOL and APTOS, secp256k1 for ETH); 0 turns the key pool off. */
  KEY_POOL_SIZE: envVar.int({ default: 20, min: 0, max: 100_000 }),
  /**
   * Keys the refillers of all replicas create per KEY_POOL_RATE_WINDOW_MS (Redis, fleet-wide): keep
   * it below the project's Cloud KMS write quota, leaving room for creates that find the pool empty.
   */
  KEY_POOL_CREATES_PER_WINDOW: envVar.int({ default: 30, min: 1, max: 1_000_000 }),
  /** The window of KEY_POOL_CREATES_PER_WINDOW: Cloud KMS quotas are per minute. */
  KEY_POOL_RATE_WINDOW_MS: envVar.int({ default: 60_000, min: 100, max: 3_600_000 }),
  /** Pause between refill passes (a create that takes a key asks for one sooner). */
  KEY_POOL_REFILL_INTERVAL_MS: envVar.int({ default: 5000, min: 10, max: 3_600_000 }),
  /** Keys a refill pass creates at once. */
  KEY_POOL_REFILL_CONCURRENCY: envVar.int({ default: 4, min: 1, max: 256 }),
  /** Between passes that delete policy spend older than 25 h (it no longer counts toward any cap). */
  POLICY_SPEND_PRUNE_INTERVAL_MS: envVar.int({ default: 600_000, min: 1000, max: 86_400_000 }),
};

export type WalletConfig = ReturnType<typeof loadWalletConfig>;

/** Throws ConfigError naming every bad variable. */
export const loadWalletConfig = (env?: NodeJS.ProcessEnv) => loadConfig(configShape, env);
