import { randomUUID } from 'node:crypto';
import { type Chain, type DepositWebhookBody, ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Outbox, OutboxMessage } from '@wallet-fleet/messaging';
import { databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';

export type DepositStatus = 'pending' | 'credited' | 'failed' | 'rejected';

export interface AttemptEntry {
  attempt: number;
  status: 'credited' | 'failed' | 'rejected' | 'retry';
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
}

const COLUMNS = 'deposit_id, chain, tx_hash, event_index, token, amount::text AS amount, to_address, status, attempts';

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
});

/** Runs `fn` in a transaction on one client; rolls back and rethrows on failure. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw databaseError(e);
  }
  let ok = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    ok = true;
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e instanceof FleetError ? e : databaseError(e);
  } finally {
    client.release(!ok);
  }
}

/**
 * Stores a deposit and its processing message (built by `messages` from the new deposit id) in
 * one transaction. Dedupe is the unique constraint on (chain, tx_hash, event_index): the insert
 * either creates the row or does nothing, and then the existing row is read (it is committed: a
 * concurrent insert of the same key waits on the constraint until the other transaction ends).
 * Returns the job id and whether this call created it.
 * Throws IDEMPOTENCY_CONFLICT (same transfer, other token/amount/address), UNAVAILABLE (database).
 */
export async function acceptDeposit(
  pool: pg.Pool,
  outbox: Outbox,
  body: DepositWebhookBody,
  webhookId: string,
  messages: (depositId: string) => OutboxMessage[],
): Promise<{ jobId: string; created: boolean }> {
  return inTransaction(pool, async (client) => {
    const id = randomUUID();
    const inserted = await client.query<{ deposit_id: string }>(
      `INSERT INTO deposits (deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id)
       VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, $8)
       ON CONFLICT (chain, tx_hash, event_index) DO NOTHING RETURNING deposit_id`,
      [id, body.chain, body.txHash, body.eventIndex, body.token, body.amount, body.toAddress, webhookId],
    );
    if (inserted.rows.length === 1) {
      await outbox.enqueue(client, messages(id));
      return { jobId: id, created: true };
    }
    const { rows } = await client.query<RawRow>(`SELECT ${COLUMNS} FROM deposits WHERE chain = $1 AND tx_hash = $2 AND event_index = $3`, [
      body.chain,
      body.txHash,
      body.eventIndex,
    ]);
    const existing = rows[0];
    if (!existing) throw new FleetError(ErrorCode.UNAVAILABLE, 'deposit vanished between insert and read');
    if (existing.token !== body.token || existing.amount !== body.amount || existing.to_address !== body.toAddress) {
      throw new FleetError(ErrorCode.IDEMPOTENCY_CONFLICT, 'a different deposit with this chain, txHash and eventIndex was already accepted', {
        details: { jobId: existing.deposit_id },
      });
    }
    return { jobId: existing.deposit_id, created: false };
  });
}

const flushes = new WeakMap<Outbox, { queued?: Promise<void>; running: Promise<void> }>();

/**
 * One relay pass for every request waiting, rather than one pass each (group commit): a caller that
 * arrives while a flush runs joins the single flush queued behind it, which starts after the running
 * one and so sees every row committed before the caller asked.
 */
function coalescedFlush(outbox: Outbox): Promise<void> {
  let state = flushes.get(outbox);
  if (!state) flushes.set(outbox, (state = { running: Promise.resolve() }));
  const s = state;
  s.queued ??= s.running
    .catch(() => undefined)
    .then(() => {
      s.queued = undefined;
      s.running = outbox.flush().then(() => undefined);
      return s.running;
    });
  return s.queued;
}

/**
 * Resolves once the outbox row with `messageId` is gone, i.e. published with a broker confirm: the
 * relay deletes a row only after the confirm, in the transaction that locked it. `flush()` relays
 * what is pending here; a row another replica's relay holds locked mid-publish is waited for with
 * `FOR UPDATE` (bounded by lock_timeout) rather than skipped. Throws UNAVAILABLE when the row is
 * still there after a few rounds (broker down: the relay keeps it and publishes later).
 */
export async function ensurePublished(pool: pg.Pool, outbox: Outbox, messageId: string, rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    try {
      await coalescedFlush(outbox);
    } catch (e) {
      throw new FleetError(ErrorCode.UNAVAILABLE, 'could not publish the deposit message', { cause: e });
    }
    const pending = await inTransaction(pool, async (c) => {
      await c.query(`SET LOCAL lock_timeout = '5s'`);
      const { rowCount } = await c.query('SELECT 1 FROM outbox WHERE message_id = $1 FOR UPDATE', [messageId]);
      return (rowCount ?? 0) > 0;
    });
    if (!pending) return;
  }
  throw new FleetError(ErrorCode.UNAVAILABLE, 'deposit message not yet published');
}

/** The deposit, or undefined. Throws UNAVAILABLE. */
export async function getDeposit(db: pg.Pool | pg.ClientBase, depositId: string, forUpdate = false): Promise<DepositRow | undefined> {
  try {
    const { rows } = await db.query<RawRow>(`SELECT ${COLUMNS} FROM deposits WHERE deposit_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [depositId]);
    return rows[0] ? toRow(rows[0]) : undefined;
  } catch (e) {
    throw databaseError(e);
  }
}

/** Appends to the job's attempt log and sets its status. */
export async function recordAttempt(client: pg.ClientBase, depositId: string, entry: AttemptEntry, status: DepositStatus): Promise<void> {
  await client.query(
    `UPDATE deposits SET attempts = attempts || $2::jsonb, status = $3, updated_at = now() WHERE deposit_id = $1`,
    [depositId, JSON.stringify([entry]), status],
  );
}

/** Normalised form used as the key of `known_addresses` (EVM: lower-case). */
export function addressKey(chain: Chain, address: string): string {
  return chain === 'ETH' || chain === 'APTOS' ? address.toLowerCase() : address;
}

/** Remembers a wallet of ours (idempotent). Throws UNAVAILABLE. */
export async function rememberAddress(pool: pg.Pool, w: { chain: Chain; address: string; walletId: string; userId: string }): Promise<void> {
  try {
    await pool.query(
      `INSERT INTO known_addresses (chain, address, wallet_id, user_id) VALUES ($1, $2, $3, $4) ON CONFLICT (chain, address) DO NOTHING`,
      [w.chain, addressKey(w.chain, w.address), w.walletId, w.userId],
    );
  } catch (e) {
    throw databaseError(e);
  }
}

/** The wallet of ours at `address`, or undefined. Throws UNAVAILABLE. */
export async function findWallet(pool: pg.Pool, chain: Chain, address: string): Promise<{ walletId: string; userId: string } | undefined> {
  try {
    const { rows } = await pool.query<{ wallet_id: string; user_id: string }>(
      'SELECT wallet_id, user_id FROM known_addresses WHERE chain = $1 AND address = $2',
      [chain, addressKey(chain, address)],
    );
    return rows[0] ? { walletId: rows[0].wallet_id, userId: rows[0].user_id } : undefined;
  } catch (e) {
    throw databaseError(e);
  }
}

/**
 * Inserts the ledger entry of a deposit unless it has one (UNIQUE (deposit_id)). Returns the new
 * entry id, or undefined when the deposit was already credited.
 */
export async function insertCredit(
  client: pg.ClientBase,
  d: DepositRow,
  wallet: { walletId: string; userId: string },
): Promise<string | undefined> {
  const entryId = randomUUID();
  const { rows } = await client.query<{ entry_id: string }>(
    `INSERT INTO ledger (entry_id, deposit_id, wallet_id, user_id, chain, token, amount)
     VALUES ($1, $2, $3, $4, $5, $6, $7::numeric) ON CONFLICT (deposit_id) DO NOTHING RETURNING entry_id`,
    [entryId, d.depositId, wallet.walletId, wallet.userId, d.chain, d.token, d.amount],
  );
  return rows[0]?.entry_id;
}
