import { baseConfigShape, envVar, loadConfig } from '@wallet-fleet/service-kit';

const int = (def: number, min: number, max: number) => envVar.int({ min, max, default: def });

/**
 * The wallet service's environment. With `KMS_ENDPOINT` set (host:port) the KMS client talks
 * plaintext gRPC to that endpoint: the KMS emulator of development and tests. Unset, it talks to
 * Google Cloud KMS with the machine's application default credentials.
 */
const configShape = {
  ...baseConfigShape,
  HTTP_PORT: envVar.port(8082),
  DATABASE_SCHEMA: envVar.identifier('wallet'),
  DATABASE_POOL_MAX: int(10, 1, 200),
  KMS_PROJECT_ID: envVar.string('wallet-fleet-local'),
  KMS_LOCATION_ID: envVar.string('global'),
  KMS_KEY_RING_ID: envVar.string('wallets'),
  KMS_ENDPOINT: envVar.string('127.0.0.1:9011').optional(),
  KMS_CALL_TIMEOUT_MS: int(5000, 100, 60_000),
  SOLANA_RPC_URL: envVar.url(['http', 'https'], 'http://127.0.0.1:8899'),
  EVM_RPC_URL: envVar.url(['http', 'https'], 'http://127.0.0.1:8545'),
  APTOS_NODE_URL: envVar.url(['http', 'https'], 'http://127.0.0.1:8080/v1'),
  /** How long a native balance read from a chain is served from Redis (our own transfers invalidate it). */
  BALANCE_CACHE_TTL_MS: int(5000, 1, 3_600_000),
  /** How long a transfer waits for its confirmation before answering TIMEOUT. */
  CONFIRM_TIMEOUT_MS: int(30_000, 1000, 600_000),
  /** Signing and transfer requests per user per minute (Redis, fleet-wide). */
  SIGN_RATE_PER_MINUTE: int(60, 1, 100_000),
};

export type WalletConfig = ReturnType<typeof loadWalletConfig>;

/** Throws ConfigError naming every bad variable. */
export function loadWalletConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(configShape, env);
}
