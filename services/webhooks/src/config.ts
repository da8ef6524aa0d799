import type { EvmFinality } from '@wallet-fleet/chains';
import { ConfigError, envVar, loadConfig, serviceConfigShape } from '@wallet-fleet/service-kit';

/** One sender's signing secret: deliveries verified by it are rate-limited under `sender`. */
export interface SenderSecret {
  sender: string;
  secret: string;
}

const SENDER = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
/** The sender name of a bare `whsec_` entry (the format before senders were named). */
const DEFAULT_SENDER = 'default';

const isSecret = (s: string) => /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(s) && Buffer.from(s.slice(6), 'base64').length >= 16;

/** `name=whsec_…` or a bare `whsec_…` (sender `default`). */
function parseSenderSecret(entry: string): SenderSecret | undefined {
  // base64 padding also uses `=`, but never before `whsec_`: a name is what precedes `=whsec_`.
  const named = entry.indexOf('=whsec_');
  if (named > 0) {
    const sender = entry.slice(0, named);
    const secret = entry.slice(named + 1);
    return SENDER.test(sender) && isSecret(secret) ? { sender, secret } : undefined;
  }
  return isSecret(entry) ? { sender: DEFAULT_SENDER, secret: entry } : undefined;
}

/**
 * What the fleet runner's development secret (`.fleet/webhook-secret`, scripts/fleet.mjs) decodes to
 * first: such a secret sits in a file on a developer's machine, so it needs development mode.
 */
const DEVELOPMENT_SECRET_MARK = 'wallet-fleet-development';

/** Whether `secret` (`whsec_<base64>`) is a development secret of the fleet runner. */
export const isDevelopmentWebhookSecret = (secret: string): boolean =>
  Buffer.from(secret.slice('whsec_'.length), 'base64').subarray(0, DEVELOPMENT_SECRET_MARK.length).toString('latin1') === DEVELOPMENT_SECRET_MARK;

/**
 * Comma-separated `sender=whsec_<base64>` entries (a bare `whsec_<base64>` is sender `default`).
 * Each sender has its own secret, and its own rate limit; one sender named twice is how its secret
 * rotates without downtime: add the new one, move the sender over, drop the old one.
 */
const secrets = envVar
  .list({
    nonEmpty: 'at least one secret',
    each: (s) => parseSenderSecret(s) !== undefined,
    message: 'each entry is sender=whsec_<base64 of at least 16 bytes> (sender: a-z 0-9 _ . -) or a bare whsec_ secret',
  })
  .transform((list) => list.map((s) => parseSenderSecret(s)!));

/**
 * What this process does: `intake` (POST /webhooks/deposits, the rate limit) and/or `processing`
 * (the deposit and wallet consumers, the `wallet.deposits.*` operations). Both by default; split them
 * to scale the HTTP edge and the chain checks apart.
 */
const roles = envVar
  .list({
    default: 'intake,processing',
    nonEmpty: 'comma-separated: intake, processing',
    each: (r) => r === 'intake' || r === 'processing',
    message: 'comma-separated: intake, processing',
  })
  .transform((list) => new Set(list as Array<'intake' | 'processing'>));

/** The webhooks service's environment. */
export const configShape = {
  ...serviceConfigShape({ httpPort: 8084, schema: 'webhooks', poolMax: 20 }),
  /**
   * The HTTP intake's and the outbox relay's own connections (one held by the relay's LISTEN), apart
   * from DATABASE_POOL_MAX's, which the deposit consumer uses: a burst of processing never makes a
   * delivery, or the relay pass it waits for, queue for a connection. A delivery holds one for a
   * single statement, so a few carry hundreds per second.
   */
  DATABASE_INTAKE_POOL_MAX: envVar.int({ default: 8, min: 3, max: 200 }),
  WEBHOOKS_ROLES: roles,
  /** Required when the process has the intake role. */
  WEBHOOK_SECRETS: envVar.developmentOnly(secrets.optional(), {
    what: "the fleet runner's development webhook secret",
    is: (list) => list !== undefined && list.some((s) => isDevelopmentWebhookSecret(s.secret)),
  }),
  /**
   * A stored delivery whose messages are still not confirmed this long after its INSERT is sent again
   * by the republisher (the intake's process died between its commit and the confirm, or the broker
   * failed the publish and the sender did not retry). Longer than a publish's confirm timeout.
   */
  DEPOSIT_REPUBLISH_AFTER_MS: envVar.int({ default: 30_000, min: 100, max: 3_600_000 }),
  /** Larger bodies are refused with 413 before any signature work. */
  WEBHOOK_MAX_BODY_BYTES: envVar.int({ default: 64 * 1024, min: 256, max: 1024 * 1024 }),
  /** Deliveries per authenticated sender per minute (Redis, fleet-wide); past it 429. */
  WEBHOOK_RATE_PER_MINUTE: envVar.int({ default: 6000, min: 1, max: 10_000_000 }),
  SOLANA_RPC_URL: envVar.chainUrl('http://127.0.0.1:8899'),
  EVM_RPC_URL: envVar.chainUrl('http://127.0.0.1:8545'),
  /**
   * When an EVM deposit is final (credited): `finalized` (the node's finalized block tag, the safe
   * default), or a number N of confirmations (its own block counts as 1) for a node without finality,
   * such as anvil in tests. Until then the deposit is `confirming`.
   */
  EVM_FINALITY: envVar
    .string('finalized')
    .refine((v) => v === 'finalized' || /^[1-9][0-9]{0,3}$/.test(v), 'finalized, or a number of confirmations (1-9999)')
    .transform((v): EvmFinality => (v === 'finalized' ? 'finalized' : { confirmations: Number(v) })),
  /**
   * Tokens credited, comma-separated `CHAIN:contract-or-mint` (e.g. `ETH:0xA0b8…,SOL:EPjF…`). A
   * final token transfer of any other token is recorded as `unlisted`, not credited. Empty (the
   * default): native coins only.
   */
  DEPOSIT_TOKEN_ALLOWLIST: envVar
    .list({
      default: '',
      each: (t) => /^ETH:0x[0-9a-fA-F]{40}$/.test(t) || /^SOL:[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(t),
      message: 'comma-separated ETH:0x<40 hex> or SOL:<base58 mint>',
    })
    .transform((list) => new Set(list.map((t) => (t.startsWith('ETH:') ? t.toLowerCase().replace('eth:', 'ETH:') : t)))),
  /**
   * How long after crediting (or reversing) a deposit `wallet.deposits.stuck` still lists it, so that
   * reconciliation checks it on chain again and reverses it if its transaction left the chain (a
   * reorganisation deeper than N confirmations), or credits it again once mined again. Only credits
   * made at N confirmations are listed: under the chain's own finality the answer cannot change.
   * 0 turns re-checks off.
   */
  DEPOSIT_RECHECK_WINDOW_SECONDS: envVar.int({ default: 3600, min: 0, max: 30 * 86_400 }),
  /**
   * A credit made at N confirmations (`EVM_FINALITY` a number) is reversed only when a re-check at
   * least this long after the first one that missed its transfer misses it too: one answer of one
   * node never takes money back. Credits made at the chain's own finality are never reversed on a
   * re-check (nor re-checked by reconciliation).
   */
  DEPOSIT_REVERSE_AFTER_SECONDS: envVar.int({ default: 120, min: 0, max: 86_400 }),
  /** Per RPC call. */
  CHAIN_RPC_TIMEOUT_MS: envVar.int({ default: 5000, min: 50, max: 120_000 }),
  /** Processing attempts in all (first delivery included) before the dead-letter queue. */
  DEPOSIT_MAX_ATTEMPTS: envVar.int({ default: 8, min: 1, max: 25 }),
  DEPOSIT_RETRY_INITIAL_MS: envVar.int({ default: 2000, min: 0, max: 3_600_000 }),
  DEPOSIT_RETRY_MAX_MS: envVar.int({ default: 30 * 60_000, min: 0, max: 24 * 3_600_000 }),
  /** Both delays above are this many times longer when the chain RPC itself failed (down, timeout, breaker open). */
  DEPOSIT_RPC_RETRY_FACTOR: envVar.int({ default: 4, min: 1, max: 100 }),
};

export type WebhooksConfig = ReturnType<typeof loadWebhooksConfig>;

/** Throws ConfigError naming every bad variable. */
export function loadWebhooksConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = loadConfig(configShape, env);
  if (config.WEBHOOKS_ROLES.has('intake') && !config.WEBHOOK_SECRETS) {
    throw new ConfigError([{ variable: 'WEBHOOK_SECRETS', message: 'required: comma-separated sender=whsec_ secrets (the intake role verifies signatures)' }]);
  }
  return config;
}
