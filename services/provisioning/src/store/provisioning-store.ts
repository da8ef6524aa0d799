import type { Chain } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { OutboxWriter } from '../ports.js';

export type ChainStatus = 'PENDING' | 'READY' | 'FAILED';

export interface ChainState {
  userId: string;
  chain: Chain;
  status: ChainStatus;
  attempts: number;
  lastError: { code: string; message: string } | null;
  walletId: string | null;
  address: string | null;
  startedAt: string;
  updatedAt: string;
}

interface Row {
  user_id: string;
  chain: Chain;
  status: ChainStatus;
  attempts: number;
  last_error_code: string | null;
  last_error_message: string | null;
  wallet_id: string | null;
  address: string | null;
  started_at: Date;
  updated_at: Date;
}

const toState = (r: Row): ChainState => ({
  userId: r.user_id,
  chain: r.chain,
  status: r.status,
  attempts: r.attempts,
  lastError: r.last_error_code ? { code: r.last_error_code, message: r.last_error_message ?? '' } : null,
  walletId: r.wallet_id,
  address: r.address,
  startedAt: r.started_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

type Db = pg.Pool | pg.ClientBase;
const CHAIN_ORDER = `array_position(ARRAY['SOL','ETH','APTOS'], chain)`;

/** The statements, each on a pool or a transaction's client; only the store below calls them. */
const statements = {
  async list(db: Db, userId: string): Promise<ChainState[]> {
    const { rows } = await db.query<Row>(`SELECT * FROM provisioning_chains WHERE user_id = $1 ORDER BY ${CHAIN_ORDER}`, [userId]);
    return rows.map(toState);
  },

  async get(db: Db, userId: string, chain: Chain, forUpdate = false): Promise<ChainState | undefined> {
    const { rows } = await db.query<Row>(`SELECT * FROM provisioning_chains WHERE user_id = $1 AND chain = $2${forUpdate ? ' FOR UPDATE' : ''}`, [
      userId,
      chain,
    ]);
    return rows[0] && toState(rows[0]);
  },

  /**
   * Creates or extends the user's row and locks it: every approval of one user then runs after
   * the other, so exactly one of them inserts each chain row and enqueues its job. Adding chains
   * to a completed user clears `completed_at` (the larger set completes once more).
   */
  async upsertUser(client: pg.ClientBase, userId: string, chains: readonly Chain[]): Promise<void> {
    await client.query(
      `INSERT INTO provisioning_users (user_id, chains) VALUES ($1, $2)
       ON CONFLICT (user_id) DO UPDATE SET
         chains = ARRAY(SELECT DISTINCT unnest(provisioning_users.chains || EXCLUDED.chains)),
         completed_at = CASE WHEN EXCLUDED.chains <@ provisioning_users.chains THEN provisioning_users.completed_at END`,
      [userId, chains],
    );
  },

  /** Locks the user's row (serialises the completion check of its chains). */
  async lockUser(client: pg.ClientBase, userId: string): Promise<{ chains: Chain[]; completedAt: Date | null } | undefined> {
    const { rows } = await client.query<{ chains: Chain[]; completed_at: Date | null }>(
      'SELECT chains, completed_at FROM provisioning_users WHERE user_id = $1 FOR UPDATE',
      [userId],
    );
    return rows[0] && { chains: rows[0].chains, completedAt: rows[0].completed_at };
  },

  /** Inserts PENDING rows for the chains the user has none for yet; returns those chains. */
  async insertPending(client: pg.ClientBase, userId: string, chains: readonly Chain[], leaseMs: number): Promise<Chain[]> {
    const { rows } = await client.query<{ chain: Chain }>(
      `INSERT INTO provisioning_chains (user_id, chain, status, lease_until)
       SELECT $1, c, 'PENDING', now() + make_interval(secs => $3::double precision / 1000) FROM unnest($2::text[]) AS c
       ON CONFLICT (user_id, chain) DO NOTHING
       RETURNING chain`,
      [userId, chains, leaseMs],
    );
    return rows.map((r) => r.chain);
  },

  /** FAILED chains among `chains` back to PENDING with a fresh attempt count; returns them. */
  async resetFailed(client: pg.ClientBase, userId: string, chains: readonly Chain[], leaseMs: number): Promise<Chain[]> {
    const { rows } = await client.query<{ chain: Chain }>(
      `UPDATE provisioning_chains
          SET status = 'PENDING', attempts = 0, started_at = now(), updated_at = now(),
              lease_until = now() + make_interval(secs => $3::double precision / 1000)
        WHERE user_id = $1 AND chain = ANY($2::text[]) AND status = 'FAILED'
        RETURNING chain`,
      [userId, chains, leaseMs],
    );
    return rows.map((r) => r.chain);
  },

  /** Marks the start of an attempt: the row is not stuck until `leaseMs` from now. */
  async touch(db: Db, userId: string, chain: Chain, leaseMs: number): Promise<void> {
    await db.query(
      `UPDATE provisioning_chains SET started_at = now(), lease_until = now() + make_interval(secs => $3::double precision / 1000)
        WHERE user_id = $1 AND chain = $2 AND status = 'PENDING'`,
      [userId, chain, leaseMs],
    );
  },

  async markReady(client: pg.ClientBase, userId: string, chain: Chain, wallet: { walletId: string; address: string }): Promise<void> {
    await client.query(
      `UPDATE provisioning_chains
          SET status = 'READY', attempts = attempts + 1, wallet_id = $3, address = $4,
              last_error_code = NULL, last_error_message = NULL, updated_at = now()
        WHERE user_id = $1 AND chain = $2`,
      [userId, chain, wallet.walletId, wallet.address],
    );
  },

  /** Records a failed attempt; `status` FAILED ends the chain, PENDING waits for the retry (lease pushed by `leaseMs`). */
  async markFailedAttempt(
    client: pg.ClientBase,
    userId: string,
    chain: Chain,
    status: 'PENDING' | 'FAILED',
    error: { code: string; message: string },
    leaseMs: number,
  ): Promise<number> {
    const { rows } = await client.query<{ attempts: number }>(
      `UPDATE provisioning_chains
          SET status = $3, attempts = attempts + 1, last_error_code = $4, last_error_message = $5, updated_at = now(),
              lease_until = now() + make_interval(secs => $6::double precision / 1000)
        WHERE user_id = $1 AND chain = $2
        RETURNING attempts`,
      [userId, chain, status, error.code, error.message, leaseMs],
    );
    return rows[0]?.attempts ?? 0;
  },

  async markCompleted(client: pg.ClientBase, userId: string): Promise<void> {
    await client.query('UPDATE provisioning_users SET completed_at = now() WHERE user_id = $1', [userId]);
  },

  /**
   * Claims PENDING rows whose lease ran out and renews their lease. `SKIP LOCKED`: rows another
   * replica's sweep (or a job finishing right now) holds are left to it, so two sweeps never
   * enqueue the same row twice.
   */
  async claimStuck(client: pg.ClientBase, leaseMs: number, limit: number): Promise<Array<{ userId: string; chain: Chain }>> {
    const { rows } = await client.query<{ user_id: string; chain: Chain }>(
      `UPDATE provisioning_chains p
          SET lease_until = now() + make_interval(secs => $1::double precision / 1000), updated_at = now()
         FROM (SELECT user_id, chain FROM provisioning_chains
                WHERE status = 'PENDING' AND lease_until < now()
                ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED) s
        WHERE p.user_id = s.user_id AND p.chain = s.chain
        RETURNING p.user_id, p.chain`,
      [leaseMs, limit],
    );
    return rows.map((r) => ({ userId: r.user_id, chain: r.chain }));
  },
};

type Statements = typeof statements;
type Bound = { [K in keyof Statements]: Statements[K] extends (db: never, ...a: infer A) => infer R ? (...a: A) => R : never };

/** The statements of one transaction, plus the outbox in that same transaction. */
export type ProvisioningTx = Bound & { enqueue(messages: OutboxMessage | readonly OutboxMessage[]): Promise<void> };

function bind(db: Db): Bound {
  return Object.fromEntries(
    Object.entries(statements).map(([k, fn]) => [k, (...a: unknown[]) => (fn as (db: Db, ...a: unknown[]) => unknown)(db, ...a)]),
  ) as Bound;
}

export type ProvisioningStore = ReturnType<typeof createProvisioningStore>;

/**
 * All SQL of the provisioning state. Every method throws FleetError `UNAVAILABLE` (retryable) or
 * `INTERNAL` for a database failure; a FleetError thrown by a transaction's body passes unchanged.
 */
export function createProvisioningStore(pool: pg.Pool, outbox: OutboxWriter) {
  const onPool = bind(pool);
  return {
    list: (userId: string) => withDatabaseErrors(() => onPool.list(userId)),
    get: (userId: string, chain: Chain) => withDatabaseErrors(() => onPool.get(userId, chain)),
    /** Marks the start of an attempt (or a wait): the row is not stuck until `leaseMs` from now. */
    touch: (userId: string, chain: Chain, leaseMs: number) => withDatabaseErrors(() => onPool.touch(userId, chain, leaseMs)),
    /** Runs `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
    transaction: <T>(fn: (tx: ProvisioningTx) => Promise<T>): Promise<T> =>
      withDatabaseErrors(() => inTransaction(pool, (client) => fn({ ...bind(client), enqueue: (m) => outbox.enqueue(client, m) }))),
  };
}
