import { baseConfigShape, ConfigError, envVar, loadConfig } from '@wallet-fleet/service-kit';
import { z } from 'zod';

const int = (def: number, min: number, max: number) => envVar.int({ min, max, default: def });

/**
 * `whsec_<base64>` secrets, comma-separated. Several at once is how a secret rotates without
 * downtime: add the new one, move the sender over, drop the old one.
 */
const secrets = z
  .string({ error: 'required: comma-separated whsec_ secrets' })
  .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
  .refine((list) => list.length > 0, 'at least one secret')
  .refine(
    (list) => list.every((s) => /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(s) && Buffer.from(s.slice(6), 'base64').length >= 16),
    'each secret is whsec_ followed by base64 of at least 16 bytes',
  );

/**
 * What this process does: `intake` (POST /webhooks/deposits, the rate limit) and/or `processing`
 * (the deposit and wallet consumers, the `wallet.deposits.*` operations). Both by default; split them
 * to scale the HTTP edge and the chain checks apart.
 */
const roles = z
  .string()
  .default('intake,processing')
  .transform((v) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0))
  .refine((list) => list.length > 0 && list.every((r) => r === 'intake' || r === 'processing'), 'comma-separated: intake, processing')
  .transform((list) => new Set(list as Array<'intake' | 'processing'>));

/** The webhooks service's environment. */
const configShape = {
  ...baseConfigShape,
  HTTP_PORT: envVar.port(8084),
  DATABASE_SCHEMA: envVar.identifier('webhooks'),
  DATABASE_POOL_MAX: int(20, 1, 200),
  /**
   * The HTTP intake's and the outbox relay's own connections (one held by the relay's LISTEN), apart
   * from DATABASE_POOL_MAX's, which the deposit consumer uses: a burst of processing never makes a
   * delivery, or the relay pass it waits for, queue for a connection. A delivery holds one for a
   * single statement, so a few carry hundreds per second.
   */
  DATABASE_INTAKE_POOL_MAX: int(8, 3, 200),
  WEBHOOKS_ROLES: roles,
  /** Required when the process has the intake role. */
  WEBHOOK_SECRETS: secrets.optional(),
  /** Larger bodies are refused with 413 before any signature work. */
  WEBHOOK_MAX_BODY_BYTES: int(64 * 1024, 256, 1024 * 1024),
  /** Deliveries per source per minute (Redis, fleet-wide); past it 429. */
  WEBHOOK_RATE_PER_MINUTE: int(6000, 1, 10_000_000),
  /** Header naming the source for the rate limit (e.g. `x-forwarded-for` behind a proxy); unset = the client IP. */
  WEBHOOK_SOURCE_HEADER: envVar.string().optional(),
  SOLANA_RPC_URL: envVar.url(['http', 'https'], 'http://127.0.0.1:8899'),
  EVM_RPC_URL: envVar.url(['http', 'https'], 'http://127.0.0.1:8545'),
  /** Blocks on top of the receipt's block (the receipt's own block counts as 1). */
  EVM_MIN_CONFIRMATIONS: int(1, 1, 1000),
  /** Per RPC call. */
  CHAIN_RPC_TIMEOUT_MS: int(5000, 50, 120_000),
  /** Processing attempts in all (first delivery included) before the dead-letter queue. */
  DEPOSIT_MAX_ATTEMPTS: int(8, 1, 25),
  DEPOSIT_RETRY_INITIAL_MS: int(2000, 0, 3_600_000),
  DEPOSIT_RETRY_MAX_MS: int(30 * 60_000, 0, 24 * 3_600_000),
  /** Both delays above are this many times longer when the chain RPC itself failed (down, timeout, breaker open). */
  DEPOSIT_RPC_RETRY_FACTOR: int(4, 1, 100),
};

export type WebhooksConfig = ReturnType<typeof loadWebhooksConfig>;

/** Throws ConfigError naming every bad variable. */
export function loadWebhooksConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = loadConfig(configShape, env);
  if (config.WEBHOOKS_ROLES.has('intake') && !config.WEBHOOK_SECRETS) {
    throw new ConfigError([{ variable: 'WEBHOOK_SECRETS', message: 'required: comma-separated whsec_ secrets (the intake role verifies signatures)' }]);
  }
  return config;
}
