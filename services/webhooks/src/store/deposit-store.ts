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

/** A stored delivery's claim as its `deposit.received` message and its accept audit event carry it. */
export type StoredClaim = Pick<DepositRow, 'depositId' | 'chain' | 'txHash' | 'eventIndex' | 'token' | 'amount' | 'toAddress'> & {
  /** When the row was stored: the time of its accept audit event, whoever publishes it. */
  createdAt: string;
};

/** An accepted delivery: its job, whether this delivery created it, and whether its publish was confirmed. */
export interface Accepted extends StoredClaim {
  /** Whether this delivery created the job (false: a duplicate). */
  created: boolean;
  /** Whether the job's messages were confirmed by the broker already (then a duplicate publishes nothing). */
  published: boolean;
}

interface AcceptRow {
  /** The id this batch proposed for the delivery (`v.deposit_id`): which call the row answers. */
  asked: string;
  deposit_id: string;
  created_at: Date;
  created: boolean;
  published: boolean;
}

/** One delivery waiting to be stored in the next batch. */
interface PendingAccept {
  id: string;
  body: DepositWebhookBody;
  webhookId: string;
  resolve(a: Accepted): void;
  reject(e: unknown): void;
}

/** Batches storing at once per pool; a call beyond them waits for the next and joins it (group commit). */
const ACCEPT_BATCHES_IN_FLIGHT = 4;
const ACCEPT_BATCH_MAX = 64;

// The deliveries of a batch as a relation, from one array parameter per column.
const BATCH_VALUES = `v AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::numeric[], $7::text[], $8::text[])
                AS v (deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id))`;
const SAME_CLAIM = `d.chain = v.chain AND d.tx_hash = v.tx_hash AND d.event_index = v.event_index AND d.token = v.token
                    AND d.amount = v.amount AND d.to_address = v.to_address AND d.status <> 'reversed'`;

/**
 * Stores deliveries' deposits (`job_published` false until their messages are confirmed, see
 * `markPublished`), many in one statement: concurrent calls share a round trip and a commit (group
 * commit, up to ACCEPT_BATCHES_IN_FLIGHT statements at once; a call arriving while they all run joins
 * the next, so an idle intake adds no wait). A batch that fails is stored again call by call, so one
 * call's failure is never another's. Dedupe is the unique index on the whole claim (chain, tx_hash,
 * event_index, token, amount, to_address) among deposits not reversed: another claim for the same
 * transfer is another job (the chain decides which one is true; the credit is unique per on-chain
 * transfer, in the ledger), and so is a claim delivered again after its deposit was reversed (the
 * transfer mined again after a reorganisation). The INSERT either creates a row or does nothing; for a
 * delivery that created nothing the same statement reads the existing row, unless that row was
 * committed after the statement's snapshot (the INSERT waited on the constraint for it, or it came in
 * the same batch): then a second statement, which sees what committed before it, reads it. Rows are
 * inserted in claim order, so two batches waiting on each other's uncommitted keys take them in the
 * same order and cannot deadlock.
 */
function createAcceptor(pool: pg.Pool) {
  const queue: PendingAccept[] = [];
  let running = 0;

  const kick = () => {
    while (running < ACCEPT_BATCHES_IN_FLIGHT && queue.length > 0) {
      const batch = queue.splice(0, ACCEPT_BATCH_MAX);
      running++;
      void store(batch).finally(() => {
        running--;
        kick();
      });
    }
  };

  async function store(batch: PendingAccept[]): Promise<void> {
    let rows: AcceptRow[];
    try {
      rows = await acceptMany(pool, batch);
    } catch (e) {
      if (batch.length === 1) {
        batch[0]!.reject(databaseError(e));
        return;
      }
      await Promise.all(batch.map((p) => store([p])));
      return;
    }
    const byAsked = new Map(rows.map((r) => [r.asked, r]));
    for (const p of batch) {
      const row = byAsked.get(p.id);
      // Reversed between the two statements: the sender's retry makes a new deposit.
      if (!row) {
        p.reject(new FleetError(ErrorCode.UNAVAILABLE, 'deposit vanished between insert and read'));
        continue;
      }
      const b = p.body;
      p.resolve({
        depositId: row.deposit_id,
        chain: b.chain,
        txHash: b.txHash,
        eventIndex: b.eventIndex,
        token: b.token,
        amount: b.amount,
        toAddress: b.toAddress,
        createdAt: row.created_at.toISOString(),
        created: row.created,
        published: row.published,
      });
    }
  }

  /** Throws UNAVAILABLE (database). */
  return (body: DepositWebhookBody, webhookId: string): Promise<Accepted> =>
    new Promise<Accepted>((resolve, reject) => {
      queue.push({ id: randomUUID(), body, webhookId, resolve, reject });
      kick();
    });
}

/** The INSERT of a batch and the rows of its duplicates: one statement, a second one only for rows it could not see. */
async function acceptMany(pool: pg.Pool, batch: readonly PendingAccept[]): Promise<AcceptRow[]> {
  const columns = [
    batch.map((p) => p.id),
    batch.map((p) => p.body.chain),
    batch.map((p) => p.body.txHash),
    batch.map((p) => p.body.eventIndex),
    batch.map((p) => p.body.token),
    batch.map((p) => p.body.amount),
    batch.map((p) => p.body.toAddress),
    batch.map((p) => p.webhookId),
  ];
  const { rows } = await pool.query<AcceptRow>({
    name: 'webhooks-accept',
    text: `WITH ${BATCH_VALUES},
       ins AS (
         INSERT INTO deposits (deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id, job_published)
         SELECT deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id, false FROM v
          ORDER BY chain, tx_hash, event_index, token, amount, to_address
         ON CONFLICT (chain, tx_hash, event_index, token, amount, to_address) WHERE status <> 'reversed' DO NOTHING
         RETURNING deposit_id, created_at)
       SELECT deposit_id AS asked, deposit_id, created_at, true AS created, false AS published FROM ins
       UNION ALL
       SELECT v.deposit_id, d.deposit_id, d.created_at, false, d.job_published FROM v JOIN deposits d ON ${SAME_CLAIM}
        WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.deposit_id = v.deposit_id)`,
    values: columns,
  });
  if (rows.length >= batch.length) return rows;
  const seen = new Set(rows.map((r) => r.asked));
  const again = await pool.query<AcceptRow>(
    `WITH ${BATCH_VALUES}
     SELECT v.deposit_id AS asked, d.deposit_id, d.created_at, false AS created, d.job_published AS published FROM v JOIN deposits d ON ${SAME_CLAIM}`,
    columns.map((c) => c.filter((_, i) => !seen.has(batch[i]!.id))),
  );
  return [...rows, ...again.rows];
}

/** Records that these deposits' messages were confirmed by the broker (one statement for many). */
async function markPublished(db: pg.Pool | pg.ClientBase, depositIds: readonly string[]): Promise<void> {
  if (depositIds.length === 0) return;
  await db.query('UPDATE deposits SET job_published = true WHERE deposit_id = ANY($1::uuid[]) AND NOT job_published', [depositIds]);
}

/**
 * One sweep of deliveries stored more than `olderThanMs` ago whose messages were never confirmed
 * (see the republisher): claims up to `limit` of them (`FOR UPDATE SKIP LOCKED`, so replicas share
 * the work), lets `publish` send them, marks those it says were confirmed, commits. Returns how many
 * were claimed. Throws UNAVAILABLE (database); what `publish` throws passes unchanged.
 */
async function republishStale(pool: pg.Pool, olderThanMs: number, limit: number, publish: (claims: StoredClaim[]) => Promise<string[]>): Promise<number> {
  return inTransaction(pool, async (client) => {
    const { rows } = await client.query<RawRow & { created_at: Date }>(
      `SELECT ${COLUMNS}, created_at FROM deposits
        WHERE NOT job_published AND created_at < now() - make_interval(secs => $1::float8 / 1000)
        ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
      [olderThanMs, limit],
    );
    if (rows.length === 0) return 0;
    const claims = rows.map((r): StoredClaim => {
      const { depositId, chain, txHash, eventIndex, token, amount, toAddress } = toRow(r);
      return { depositId, chain, txHash, eventIndex, token, amount, toAddress, createdAt: r.created_at.toISOString() };
    });
    await markPublished(client, await publish(claims));
    return rows.length;
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
  const accept = createAcceptor(pool);
  return {
    /** See createAcceptor above. Throws UNAVAILABLE. */
    accept,
    /** See markPublished above. Throws UNAVAILABLE. */
    markPublished: (depositIds: readonly string[]) => withDatabaseErrors(() => markPublished(pool, depositIds)),
    /** See republishStale above. Throws UNAVAILABLE. */
    republishStale: (olderThanMs: number, limit: number, publish: (claims: StoredClaim[]) => Promise<string[]>) =>
      withDatabaseErrors(() => republishStale(pool, olderThanMs, limit, publish)),
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
