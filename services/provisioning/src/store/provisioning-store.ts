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

  /**
   * Starts an attempt on a PENDING row: the row is not stuck until `leaseMs` from now. Returns it,
   * or `undefined` when it is not PENDING (or absent): the read and the lease in one statement.
   */
  async claim(db: Db, userId: string, chain: Chain, leaseMs: number): Promise<ChainState | undefined> {
    const { rows } = await db.query<Row>(
      `UPDATE provisioning_chains SET started_at = now(), lease_until = now() + make_interval(secs => $3::double precision / 1000)
        WHERE user_id = $1 AND chain = $2 AND status = 'PENDING'
        RETURNING *`,
      [userId, chain, leaseMs],
    );
    return rows[0] && toState(rows[0]);
  },

  /** The user's chains and completion with the state of each chain row, for the completion check. */
  async completion(
    db: Db,
    userId: string,
  ): Promise<
    | { chains: Chain[]; completedAt: Date | null; rows: Array<{ chain: Chain; status: ChainStatus; walletId: string | null; address: string | null }> }
    | undefined
  > {
    const { rows } = await db.query<{
      chains: Chain[];
      completed_at: Date | null;
      chain: Chain | null;
      status: ChainStatus | null;
      wallet_id: string | null;
      address: string | null;
    }>(
      `SELECT u.chains, u.completed_at, p.chain, p.status, p.wallet_id, p.address
         FROM provisioning_users u LEFT JOIN provisioning_chains p ON p.user_id = u.user_id
        WHERE u.user_id = $1`,
      [userId],
    );
    if (!rows[0]) return undefined;
    return {
      chains: rows[0].chains,
      completedAt: rows[0].completed_at,
      rows: rows.flatMap((r) => (r.chain && r.status ? [{ chain: r.chain, status: r.status, walletId: r.wallet_id, address: r.address }] : [])),
    };
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

/**
 * Runs `text` (a statement with CTE `done` whose rows say it took effect) with `messages` inserted
 * into the outbox by the same statement when it did: one round trip, one commit. Returns whether it did.
 */
async function withMessages(
  pool: pg.Pool,
  outbox: OutboxWriter,
  name: string,
  text: string,
  values: unknown[],
  messages: readonly OutboxMessage[],
): Promise<boolean> {
  const insert = outbox.insertSql(messages, values.length + 1);
  const { rows } = await pool.query<{ n: number }>({
    name: `${name}:${messages.length}`,
    text: `WITH done AS (${text}), a AS (${insert.sql} WHERE EXISTS (SELECT 1 FROM done)) SELECT count(*)::int AS n FROM done`,
    values: [...values, ...insert.values],
  });
  const done = rows[0]!.n > 0;
  if (done) outbox.wake();
  return done;
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
    /** Starts an attempt on a PENDING row and returns it; `undefined` when the row is not PENDING. */
    claim: (userId: string, chain: Chain, leaseMs: number) => withDatabaseErrors(() => onPool.claim(userId, chain, leaseMs)),
    /** What the completion check reads (after the caller's own change committed). */
    completion: (userId: string) => withDatabaseErrors(() => onPool.completion(userId)),
    /**
     * Marks the chain READY with `wallet`, and enqueues `messages`, in one statement, provided the
     * row still has the status and attempts the caller saw (`seen`); false, writing nothing,
     * when another job changed it meanwhile.
     */
    markReady: (
      userId: string,
      chain: Chain,
      seen: { status: ChainStatus; attempts: number },
      wallet: { walletId: string; address: string },
      messages: readonly OutboxMessage[],
    ) =>
      withDatabaseErrors(() =>
        withMessages(
          pool,
          outbox,
          'provisioning-mark-ready',
          `UPDATE provisioning_chains
              SET status = 'READY', attempts = attempts + 1, wallet_id = $3, address = $4,
                  last_error_code = NULL, last_error_message = NULL, updated_at = now()
            WHERE user_id = $1 AND chain = $2 AND status = $5 AND attempts = $6
            RETURNING 1`,
          [userId, chain, wallet.walletId, wallet.address, seen.status, seen.attempts],
          messages,
        ),
      ),
    /**
     * Marks the user completed for exactly `chains`, with `messages`, in one statement; false when
     * it was completed already or its chains changed meanwhile. Of two calls at once one wins: the
     * row lock makes the second re-check `completed_at` after the first committed.
     */
    complete: (userId: string, chains: readonly Chain[], messages: readonly OutboxMessage[]) =>
      withDatabaseErrors(() =>
        withMessages(
          pool,
          outbox,
          'provisioning-complete',
          `UPDATE provisioning_users SET completed_at = now()
            WHERE user_id = $1 AND completed_at IS NULL AND chains = $2::text[]
            RETURNING 1`,
          [userId, chains],
          messages,
        ),
      ),
    /** Runs `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. */
    transaction: <T>(fn: (tx: ProvisioningTx) => Promise<T>): Promise<T> =>
      withDatabaseErrors(() => inTransaction(pool, (client) => fn({ ...bind(client), enqueue: (m) => outbox.enqueue(client, m) }))),
  };
}
