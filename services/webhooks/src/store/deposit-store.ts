import { randomUUID } from 'node:crypto';
import { type Chain, type DepositStatus, type DepositWebhookBody, ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Outbox, OutboxMessage } from '@wallet-fleet/messaging';
import { databaseError, inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';

export type { DepositStatus } from '@wallet-fleet/contracts';

export interface AttemptEntry {
  attempt: number;
  status: 'credited' | 'failed' | 'rejected' | 'retry' | 'confirming' | 'unlisted' | 'reversed' | 'checked';
  errorCode?: string;
  message?: string;
  at: string;
  /** Set when reconciliation made the attempt (the consumer's attempts have none). */
  by?: 'reconciliation';
}

export interface DepositRow {
  depositId: string;
  chain: Chain;
  txHash: string;
  eventIndex: number;
  token: string;
  amount: string;
  toAddress: string;
  status: DepositStatus;
  attempts: AttemptEntry[];
  /** What the chain says, once read (see ChainIdentity). */
  identity?: ChainIdentity;
}

/** The transfer a claim was found to be, as the chain names it. */
export interface ChainIdentity {
  creditKey: string;
  /** `native`, the ERC-20 contract (checksummed) or the SPL mint. */
  asset: string;
  decimals: number;
}

interface RawRow {
  deposit_id: string;
  chain: Chain;
  tx_hash: string;
  event_index: number;
  token: string;
  amount: string;
  to_address: string;
  status: DepositStatus;
  attempts: AttemptEntry[];
  credit_key: string | null;
  asset: string | null;
  decimals: number | null;
}

const COLUMNS = 'deposit_id, chain, tx_hash, event_index, token, amount::text AS amount, to_address, status, attempts, credit_key, asset, decimals';

const toRow = (r: RawRow): DepositRow => ({
  depositId: r.deposit_id,
  chain: r.chain,
  txHash: r.tx_hash,
  eventIndex: r.event_index,
  token: r.token,
  amount: r.amount,
  toAddress: r.to_address,
  status: r.status,
  attempts: r.attempts,
  ...(r.credit_key && r.asset !== null && r.decimals !== null ? { identity: { creditKey: r.credit_key, asset: r.asset, decimals: r.decimals } } : {}),
});

/** The outbox's watch on published message ids (not exported by the messaging package's index). */
type PublishWatch = ReturnType<Outbox['watch']>;

/** An accepted delivery: its job, and what its 200 still waits for. */
export interface Accepted {
  jobId: string;
  /** Whether this delivery created the job (false: a duplicate). */
  created: boolean;
  /**
   * Watches the job's `deposit.received` message (its message id is the job id); undefined when
   * the accepting transaction already saw it published (a duplicate whose outbox row is gone).
   */
  watch: PublishWatch | undefined;
}

/**
 * Stores a deposit and its processing message (built by `messages` from the new deposit id) in
 * one statement, hence one transaction and one round trip: the insert and, only if it inserted,
 * the outbox rows (a data-modifying CTE). Dedupe is the unique index on the whole claim (chain,
 * tx_hash, event_index, token, amount, to_address) among deposits not reversed: another claim for the
 * same transfer is another job (the chain decides which one is true; the credit is unique per
 * on-chain transfer, in the ledger), and so is a claim delivered again after its deposit was
 * reversed (the transfer mined again after a reorganisation). The insert either creates the row or does nothing, and then the existing row is
 * read by a second statement (it is committed: a concurrent insert of the same key waits on the
 * constraint until the other transaction ends, and a new statement sees what committed before it).
 * That read also looks for the message in the outbox: the relay deletes a row only after the
 * broker's confirm, so a duplicate whose row is gone needs no waiting at all.
 * No NOTIFY: the request drives this process's relay itself (`ensurePublished`); should the
 * process die first, the rows are found by the relays' poll.
 * Pass the result to `ensurePublished`, which closes the watch.
 * Throws UNAVAILABLE (database).
 */
async function acceptDeposit(
  pool: pg.Pool,
  outbox: Outbox,
  body: DepositWebhookBody,
  webhookId: string,
  messages: (depositId: string) => OutboxMessage[],
): Promise<Accepted> {
  const id = randomUUID();
  const deposit = [id, body.chain, body.txHash, body.eventIndex, body.token, body.amount, body.toAddress, webhookId];
  const enqueue = outbox.insertSql(messages(id), deposit.length + 1);
  // Before the commit: a relay pass already running may publish the message before we ask.
  const watch = outbox.watch([id]);
  let existing: (RawRow & { pending: boolean }) | undefined;
  try {
    const inserted = await pool.query<{ deposit_id: string }>(
      `WITH ins AS (
         INSERT INTO deposits (deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id)
         VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8)
         ON CONFLICT (chain, tx_hash, event_index, token, amount, to_address) WHERE status <> 'reversed' DO NOTHING RETURNING deposit_id),
       msg AS (${enqueue.sql} WHERE EXISTS (SELECT 1 FROM ins))
       SELECT deposit_id FROM ins`,
      [...deposit, ...enqueue.values],
    );
    if (inserted.rows.length === 1) return { jobId: id, created: true, watch };
    watch.close();
    ({
      rows: [existing],
    } = await pool.query<RawRow & { pending: boolean }>(
      `SELECT ${COLUMNS}, EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = d.deposit_id::text) AS pending
         FROM deposits d WHERE chain = $1 AND tx_hash = $2 AND event_index = $3 AND token = $4 AND amount = $5::numeric AND to_address = $6
          AND status <> 'reversed'`,
      [body.chain, body.txHash, body.eventIndex, body.token, body.amount, body.toAddress],
    ));
  } catch (e) {
    watch.close();
    throw databaseError(e);
  }
  // Reversed between the two statements: the sender's retry makes a new deposit.
  if (!existing) throw new FleetError(ErrorCode.UNAVAILABLE, 'deposit vanished between insert and read');
  // A duplicate whose first delivery is still in flight, or died between its commit and the
  // publish: watched from here on; what was published before this shows up in the fallback check.
  return { jobId: existing.deposit_id, created: false, watch: existing.pending ? outbox.watch([existing.deposit_id]) : undefined };
}

/**
 * Resolves once the accepted job's `deposit.received` message is published with a broker confirm.
 * The usual case costs no query: this process's relay publishes the row in a pass shared with
 * every concurrent request (group commit) and resolves the watch by message id. Only when that
 * pass did not have the row does the request look itself, with `FOR UPDATE`, so that a row another
 * replica's relay holds mid-publish is waited for (bounded by lock_timeout) instead of skipped.
 * No connection is held while waiting for the relay, so many waiting requests cannot starve it of
 * the pool. Closes the watch. Throws UNAVAILABLE when the message is still unpublished after a few
 * rounds (broker down: the relay keeps the row and publishes it later).
 */
async function ensurePublished(pool: pg.Pool, accepted: Accepted, rounds = 3): Promise<void> {
  const { watch } = accepted;
  if (!watch) return;
  try {
    for (let i = 0; i < rounds; i++) {
      let mine: boolean;
      try {
        mine = await watch.settled();
      } catch (e) {
        throw new FleetError(ErrorCode.UNAVAILABLE, 'could not publish the deposit message', { cause: e });
      }
      if (mine || !(await stillInOutbox(pool, accepted.jobId))) return;
    }
  } finally {
    watch.close();
  }
  throw new FleetError(ErrorCode.UNAVAILABLE, 'deposit message not yet published');
}

async function stillInOutbox(pool: pg.Pool, messageId: string): Promise<boolean> {
  return inTransaction(pool, async (c) => {
    await c.query(`SET LOCAL lock_timeout = '5s'`);
    const { rowCount } = await c.query('SELECT 1 FROM outbox WHERE message_id = $1 FOR UPDATE', [messageId]);
    return (rowCount ?? 0) > 0;
  });
}

async function getDeposit(db: pg.Pool | pg.ClientBase, depositId: string, forUpdate = false): Promise<DepositRow | undefined> {
  const { rows } = await db.query<RawRow>(`SELECT ${COLUMNS} FROM deposits WHERE deposit_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [depositId]);
  return rows[0] ? toRow(rows[0]) : undefined;
}

/** Appends to the job's attempt log and sets its status (and what the chain says, when known). */
async function recordAttempt(client: pg.ClientBase, depositId: string, entry: AttemptEntry, status: DepositStatus, identity?: ChainIdentity): Promise<void> {
  await client.query(
    `UPDATE deposits SET attempts = attempts || $2::jsonb, status = $3, updated_at = now(),
            credit_key = coalesce($4, credit_key), asset = coalesce($5, asset), decimals = coalesce($6, decimals)
      WHERE deposit_id = $1`,
    [depositId, JSON.stringify([entry]), status, identity?.creditKey ?? null, identity?.asset ?? null, identity?.decimals ?? null],
  );
}

/** Normalised form used as the key of `known_addresses` (EVM: lower-case). */
function addressKey(chain: Chain, address: string): string {
  return chain === 'ETH' || chain === 'APTOS' ? address.toLowerCase() : address;
}

async function rememberAddress(pool: pg.Pool, w: { chain: Chain; address: string; walletId: string; userId: string }): Promise<void> {
  await pool.query(`INSERT INTO known_addresses (chain, address, wallet_id, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (chain, address) DO NOTHING`, [
    w.chain,
    addressKey(w.chain, w.address),
    w.walletId,
    w.userId,
  ]);
}

async function findWallet(pool: pg.Pool, chain: Chain, address: string): Promise<{ walletId: string; userId: string } | undefined> {
  const { rows } = await pool.query<{ wallet_id: string; user_id: string }>(
    'SELECT wallet_id, user_id FROM known_addresses WHERE chain = $1 AND address = $2',
    [chain, addressKey(chain, address)],
  );
  return rows[0] ? { walletId: rows[0].wallet_id, userId: rows[0].user_id } : undefined;
}

/**
 * Inserts the credit of a deposit unless its on-chain transfer is credited already (UNIQUE
 * (credit_key, round) among credits, where `round` counts the reversals of that key: whatever the
 * deliveries said, one transfer has at most one standing credit; once reversed it may be credited
 * again, in the next round). Returns the new entry id, or the deposit that holds the credit. Throws
 * a retryable UNAVAILABLE when the credit in the way was reversed meanwhile (asked again, the next
 * round is free).
 */
async function insertCredit(
  client: pg.ClientBase,
  d: DepositRow,
  wallet: { walletId: string; userId: string },
  identity: ChainIdentity,
): Promise<{ entryId: string } | { heldBy: string }> {
  const entryId = randomUUID();
  const { rows } = await client.query<{ entry_id: string }>(
    `INSERT INTO ledger (entry_id, deposit_id, wallet_id, user_id, chain, token, amount, kind, credit_key, asset, decimals, round)
     VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, 'credit', $8, $9, $10,
             (SELECT count(*) FROM ledger WHERE credit_key = $8 AND kind = 'reversal'))
     ON CONFLICT DO NOTHING RETURNING entry_id`,
    [entryId, d.depositId, wallet.walletId, wallet.userId, d.chain, d.token, d.amount, identity.creditKey, identity.asset, identity.decimals],
  );
  if (rows[0]) return { entryId: rows[0].entry_id };
  const held = await client.query<{ deposit_id: string }>(
    `SELECT c.deposit_id FROM ledger c
      WHERE c.credit_key = $1 AND c.kind = 'credit'
        AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.deposit_id = c.deposit_id AND r.kind = 'reversal')`,
    [identity.creditKey],
  );
  if (!held.rows[0]) throw FleetError.retryable(ErrorCode.UNAVAILABLE, `the credit of ${identity.creditKey} was reversed meanwhile: try again`);
  return { heldBy: held.rows[0].deposit_id };
}

/** The compensating entry of a credited deposit (minus its credit, in its round); the new entry id, or undefined when it has one. */
async function insertReversal(client: pg.ClientBase, depositId: string): Promise<string | undefined> {
  const { rows } = await client.query<{ entry_id: string }>(
    `INSERT INTO ledger (entry_id, deposit_id, wallet_id, user_id, chain, token, amount, kind, credit_key, asset, decimals, round)
     SELECT $1, deposit_id, wallet_id, user_id, chain, token, -amount, 'reversal', credit_key, asset, decimals, round
       FROM ledger WHERE deposit_id = $2 AND kind = 'credit'
     ON CONFLICT DO NOTHING RETURNING entry_id`,
    [randomUUID(), depositId],
  );
  return rows[0]?.entry_id;
}

/**
 * The claim of reversed deposit `depositId` as a new pending deposit (its transfer was mined again),
 * with `entry` as its first attempt log entry; or the deposit already open for that claim (a delivery
 * or a concurrent call came first). Undefined when `depositId` is not reversed.
 */
async function reopenReversed(pool: pg.Pool, depositId: string, entry: AttemptEntry): Promise<DepositRow | undefined> {
  const { rows } = await pool.query<RawRow>(
    `WITH old AS (SELECT * FROM deposits WHERE deposit_id = $1 AND status = 'reversed'),
     ins AS (
       INSERT INTO deposits (deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id, attempts)
       SELECT $2, chain, tx_hash, event_index, token, amount, to_address, 'reversal-of:' || deposit_id, $3::jsonb FROM old
       ON CONFLICT (chain, tx_hash, event_index, token, amount, to_address) WHERE status <> 'reversed' DO NOTHING RETURNING deposit_id)
     SELECT deposit_id FROM ins
     UNION ALL
     SELECT d.deposit_id FROM deposits d JOIN old USING (chain, tx_hash, event_index, token, amount, to_address)
      WHERE d.status <> 'reversed' AND NOT EXISTS (SELECT 1 FROM ins)`,
    [depositId, randomUUID(), JSON.stringify([entry])],
  );
  return rows[0] ? getDeposit(pool, rows[0].deposit_id) : undefined;
}

/** What an attempt's transaction may do besides recording the attempt. */
export interface AttemptTx {
  /** Credits the deposit's on-chain transfer unless it is credited already (see insertCredit). */
  insertCredit(d: DepositRow, wallet: { walletId: string; userId: string }, identity: ChainIdentity): Promise<{ entryId: string } | { heldBy: string }>;
  /** The compensating entry of the deposit's credit; undefined when it has one already. */
  insertReversal(depositId: string): Promise<string | undefined>;
}

/** What an attempt decided, once it holds the deposit's row: recorded with its messages in that transaction. */
export interface Settlement {
  status: DepositStatus;
  entry: AttemptEntry;
  identity?: ChainIdentity;
  messages: OutboxMessage[];
}

export type DepositStore = ReturnType<typeof createDepositStore>;

/**
 * All SQL of deposits, known addresses and the ledger. Every method throws FleetError
 * `UNAVAILABLE` (retryable: the intake answers 503, the consumer retries) or `INTERNAL` for a
 * database failure; a FleetError thrown by a caller's callback passes unchanged.
 */
export function createDepositStore(pool: pg.Pool, outbox: Outbox) {
  return {
    /** See acceptDeposit above. Throws UNAVAILABLE. */
    accept: (body: DepositWebhookBody, webhookId: string, messages: (depositId: string) => OutboxMessage[]) =>
      acceptDeposit(pool, outbox, body, webhookId, messages),
    /** See ensurePublished above. Throws UNAVAILABLE. */
    ensurePublished: (accepted: Accepted) => withDatabaseErrors(() => ensurePublished(pool, accepted)),
    get: (depositId: string) => withDatabaseErrors(() => getDeposit(pool, depositId)),
    findWallet: (chain: Chain, address: string) => withDatabaseErrors(() => findWallet(pool, chain, address)),
    rememberAddress: (w: { chain: Chain; address: string; walletId: string; userId: string }) => withDatabaseErrors(() => rememberAddress(pool, w)),
    /** See reopenReversed above. Throws UNAVAILABLE. */
    reopenReversed: (depositId: string, entry: AttemptEntry) => withDatabaseErrors(() => reopenReversed(pool, depositId, entry)),

    /**
     * Settles one attempt in one transaction that re-reads the deposit locked: when its status is
     * one of `from` (else nothing is written and the answer is undefined: someone else settled it
     * meanwhile), `decide` returns what to record (status, attempt entry, identity, messages), which
     * is written with its outbox messages. Returns the settlement.
     */
    settle: (
      depositId: string,
      from: readonly DepositStatus[],
      decide: (tx: AttemptTx, current: DepositRow) => Promise<Settlement>,
    ): Promise<Settlement | undefined> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          const current = await getDeposit(client, depositId, true);
          if (!current || !from.includes(current.status)) return undefined;
          const s = await decide(
            { insertCredit: (d, wallet, identity) => insertCredit(client, d, wallet, identity), insertReversal: (id) => insertReversal(client, id) },
            current,
          );
          await recordAttempt(client, depositId, s.entry, s.status, s.identity);
          await outbox.enqueue(client, s.messages);
          return s;
        }),
      ),
  };
}
