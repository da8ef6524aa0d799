import type { Chain, Wallet } from '@wallet-fleet/contracts';
import type { ProtectionLevel } from '@wallet-fleet/kms';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { KeyAlgorithm, OutboxWriter } from '../ports.js';

export interface WalletRecord extends Wallet {
  kmsKeyVersion: string;
  publicKey: Buffer;
}

interface Row {
  wallet_id: string;
  user_id: string;
  chain: Chain;
  address: string;
  label: string | null;
  is_active: boolean;
  kms_key_version: string;
  public_key: Buffer;
  created_at: Date;
}

const toRecord = (r: Row): WalletRecord => ({
  walletId: r.wallet_id,
  userId: r.user_id,
  chain: r.chain,
  address: r.address,
  label: r.label,
  isActive: r.is_active,
  createdAt: r.created_at.toISOString(),
  kmsKeyVersion: r.kms_key_version,
  publicKey: r.public_key,
});

/**
 * What never changes about a wallet once created: whose it is, its chain, address and key (the
 * runtime role may update `is_active` alone, and nobody deletes a wallet). Signing needs no more.
 */
export type OwnedWallet = Omit<WalletRecord, 'isActive' | 'label'>;

/** The public view of a wallet: what replies and events carry (no key names, no key bytes). */
export function publicWallet(w: WalletRecord): Wallet {
  return {
    walletId: w.walletId,
    userId: w.userId,
    chain: w.chain,
    address: w.address,
    label: w.label,
    isActive: w.isActive,
    createdAt: w.createdAt,
  };
}

/** PostgreSQL unique violation, with the constraint that was violated. */
function uniqueViolation(e: unknown): string | undefined {
  const err = e as { code?: string; constraint?: string };
  return err?.code === '23505' ? (err.constraint ?? 'unknown') : undefined;
}

export type NewWallet = { walletId: string; userId: string; chain: Chain; address: string; label: string | null; kmsKeyVersion: string; publicKey: Uint8Array };

/** A wallet before it has a key: what a create from the key pool starts with. */
export type WalletDraft = Omit<NewWallet, 'address' | 'kmsKeyVersion' | 'publicKey'>;

/** An unassigned pool key as read (unlocked): a create tries to assign it. */
interface PoolCandidate {
  kmsKeyVersion: string;
  publicKey: Buffer;
}

/** Candidates read at once per kind: one read serves this many creates. */
const CANDIDATE_BATCH = 64;
/** Candidates older than this are read again: other replicas may have assigned them since. */
const CANDIDATE_TTL_MS = 1000;

/** Which pooled keys fit a wallet: Cloud KMS algorithm and protection level. */
export interface PoolKind {
  algorithm: KeyAlgorithm;
  protectionLevel: ProtectionLevel;
}

const statements = {
  async get(db: pg.Pool | pg.ClientBase, userId: string, walletId: string, forUpdate = false): Promise<WalletRecord | undefined> {
    // Named: every signature starts with this read, and a prepared statement is parsed and planned
    // once per connection instead of once per call.
    const text = `SELECT * FROM wallets WHERE wallet_id = $1 AND user_id = $2${forUpdate ? ' FOR UPDATE' : ''}`;
    const { rows } = await db.query<Row>({ name: forUpdate ? 'wallet-get-for-update' : 'wallet-get', text, values: [walletId, userId] });
    return rows[0] && toRecord(rows[0]);
  },

  async list(db: pg.Pool, userId: string, chain?: Chain): Promise<WalletRecord[]> {
    const { rows } = await db.query<Row>(`SELECT * FROM wallets WHERE user_id = $1 AND ($2::text IS NULL OR chain = $2) ORDER BY created_at, wallet_id`, [
      userId,
      chain ?? null,
    ]);
    return rows.map(toRecord);
  },

  async findCreateRequest(db: pg.Pool | pg.ClientBase, userId: string, key: string): Promise<{ requestHash: string; walletId: string } | undefined> {
    const { rows } = await db.query<{ request_hash: string; wallet_id: string }>(
      'SELECT request_hash, wallet_id FROM create_requests WHERE user_id = $1 AND idempotency_key = $2',
      [userId, key],
    );
    return rows[0] && { requestHash: rows[0].request_hash, walletId: rows[0].wallet_id };
  },

  /**
   * Inserts a wallet; it is the active one when the user has no active wallet on that chain yet.
   * Two first wallets created at once both try to be active: the partial unique index lets one
   * win and the caller retries the other with `active: false`.
   */
  async insert(client: pg.ClientBase, w: NewWallet, active: 'if-first' | false): Promise<WalletRecord> {
    const { rows } = await client.query<Row>(
      `INSERT INTO wallets (wallet_id, user_id, chain, address, label, is_active, kms_key_version, public_key)
       VALUES ($1, $2, $3, $4, $5,
               $6 AND NOT EXISTS (SELECT 1 FROM wallets WHERE user_id = $2 AND chain = $3 AND is_active),
               $7, $8)
       RETURNING *`,
      [w.walletId, w.userId, w.chain, w.address, w.label, active === 'if-first', w.kmsKeyVersion, Buffer.from(w.publicKey)],
    );
    return toRecord(rows[0]!);
  },

  /**
   * Assigns the oldest unassigned pool key of `kind` to `walletId`, inside the caller's transaction:
   * SKIP LOCKED lets concurrent creates take different keys without waiting on each other, and a
   * rollback of the caller's transaction puts the key back.
   */
  async takePoolKey(client: pg.ClientBase, kind: PoolKind, walletId: string): Promise<{ kmsKeyVersion: string; publicKey: Buffer } | undefined> {
    const { rows } = await client.query<{ kms_key_version: string; public_key: Buffer }>(
      `UPDATE key_pool SET wallet_id = $3, assigned_at = now()
        WHERE kms_key_version = (SELECT kms_key_version FROM key_pool
                                  WHERE wallet_id IS NULL AND algorithm = $1 AND protection_level = $2
                                  ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING kms_key_version, public_key`,
      [kind.algorithm, kind.protectionLevel, walletId],
    );
    return rows[0] && { kmsKeyVersion: rows[0].kms_key_version, publicKey: rows[0].public_key };
  },

  /**
   * Up to `limit` unassigned keys of `kind`, read without a lock, in random order (replicas that
   * read at once get different keys first). Another create may assign any of them meanwhile:
   * `insertWithKey` finds that out.
   */
  async poolCandidates(db: pg.Pool, kind: PoolKind, limit: number): Promise<PoolCandidate[]> {
    const { rows } = await db.query<{ kms_key_version: string; public_key: Buffer }>({
      name: 'wallet-pool-candidates',
      text: `SELECT kms_key_version, public_key FROM key_pool
              WHERE wallet_id IS NULL AND algorithm = $1 AND protection_level = $2
              ORDER BY random() LIMIT $3`,
      values: [kind.algorithm, kind.protectionLevel, limit],
    });
    return rows.map((r) => ({ kmsKeyVersion: r.kms_key_version, publicKey: r.public_key }));
  },

  /**
   * A create in one statement (so one round trip and one commit): assigns the pool key the row
   * names if it is still unassigned, inserts the wallet (active when the user has no active wallet
   * on the chain), the idempotency record and the messages of whichever of the two `messages`
   * variants matches the active flag the database decided (with `active` false, `messages.active`
   * may be empty: that variant cannot be the one). `undefined` when the key was assigned
   * meanwhile (nothing written). A data-modifying CTE that inserts nothing writes nothing after it:
   * the later CTEs select from the earlier ones.
   */
  async insertWithKey(
    db: pg.Pool,
    outbox: Pick<OutboxWriter, 'insertSql'>,
    w: NewWallet & { createdAt: Date },
    active: 'if-first' | false,
    request: { key: string; hash: string } | undefined,
    messages: { active: readonly OutboxMessage[]; inactive: readonly OutboxMessage[] },
  ): Promise<WalletRecord | undefined> {
    const values: unknown[] = [w.walletId, w.userId, w.chain, w.address, w.label, active === 'if-first', w.kmsKeyVersion, w.createdAt];
    let requestSql = '';
    if (request) {
      requestSql = `, r AS (INSERT INTO create_requests (user_id, idempotency_key, request_hash, wallet_id)
                       SELECT user_id, $${values.length + 1}::text, $${values.length + 2}::text, wallet_id FROM w)`;
      values.push(request.key, request.hash);
    }
    // An insert that cannot be active (`active` false) has no active variant to write.
    let activeSql = '';
    if (messages.active.length > 0) {
      const whenActive = outbox.insertSql(messages.active, values.length + 1);
      activeSql = `a AS (${whenActive.sql} WHERE EXISTS (SELECT 1 FROM w WHERE w.is_active)),`;
      values.push(...whenActive.values);
    }
    const whenInactive = outbox.insertSql(messages.inactive, values.length + 1);
    values.push(...whenInactive.values);
    // Named (prepared once per connection): planning this statement costs about as much as running it.
    const name = `wallet-insert-with-key:${messages.active.length}:${messages.inactive.length}:${request ? 'request' : ''}`;
    const { rows } = await db.query<Row>({
      name,
      text: `WITH k AS (UPDATE key_pool SET wallet_id = $1::uuid, assigned_at = now()
                   WHERE kms_key_version = $7::text AND wallet_id IS NULL
                  RETURNING kms_key_version, public_key),
            w AS (INSERT INTO wallets (wallet_id, user_id, chain, address, label, is_active, kms_key_version, public_key, created_at)
                  SELECT $1::uuid, $2::text, $3::text, $4::text, $5::text,
                         $6::boolean AND NOT EXISTS (SELECT 1 FROM wallets WHERE user_id = $2::text AND chain = $3::text AND is_active),
                         k.kms_key_version, k.public_key, $8::timestamptz
                    FROM k
                  RETURNING *)${requestSql},
            ${activeSql}
            i AS (${whenInactive.sql} WHERE EXISTS (SELECT 1 FROM w WHERE NOT w.is_active))
       SELECT * FROM w`,
      values,
    });
    return rows[0] && toRecord(rows[0]);
  },

  async insertCreateRequest(client: pg.ClientBase, userId: string, key: string, requestHash: string, walletId: string): Promise<void> {
    await client.query('INSERT INTO create_requests (user_id, idempotency_key, request_hash, wallet_id) VALUES ($1, $2, $3, $4)', [
      userId,
      key,
      requestHash,
      walletId,
    ]);
  },

  /** Makes `walletId` the active wallet of its user and chain; returns the one active before, if any. */
  async activate(client: pg.ClientBase, w: WalletRecord): Promise<string | undefined> {
    // Lock every wallet of the user on the chain first: two setActive calls at once then run one
    // after the other instead of both switching and colliding on the one-active index.
    await client.query('SELECT 1 FROM wallets WHERE user_id = $1 AND chain = $2 ORDER BY wallet_id FOR UPDATE', [w.userId, w.chain]);
    const { rows } = await client.query<{ wallet_id: string }>(
      `UPDATE wallets SET is_active = false WHERE user_id = $1 AND chain = $2 AND is_active RETURNING wallet_id`,
      [w.userId, w.chain],
    );
    await client.query('UPDATE wallets SET is_active = true WHERE wallet_id = $1', [w.walletId]);
    return rows[0]?.wallet_id;
  },
};

/**
 * Runs an insert as the user's first active wallet if it is the first, else inactive (a concurrent
 * create may win `wallets_one_active`: then once more, inactive); only inactive when the user is
 * `knownActive` to have an active wallet on the chain already. With an idempotency key, a unique
 * violation of the wallet, the request or the pool key (the same create took a key first elsewhere)
 * is `duplicate`; anything else is thrown.
 */
async function activeOrNot<T>(idempotent: boolean, insert: (active: 'if-first' | false) => Promise<T>, knownActive = false): Promise<T | 'duplicate'> {
  for (const active of knownActive ? ([false] as const) : (['if-first', false] as const)) {
    try {
      return await insert(active);
    } catch (e) {
      const violated = uniqueViolation(e);
      if (violated === 'wallets_one_active' && active === 'if-first') continue;
      if (idempotent && (violated === 'wallets_pkey' || violated === 'create_requests_pkey' || violated === 'key_pool_wallet_id_key')) return 'duplicate';
      throw e;
    }
  }
  throw new Error('unreachable: the inactive insert cannot violate wallets_one_active');
}

export type WalletStore = ReturnType<typeof createWalletStore>;

/**
 * All SQL of wallets. Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a
 * database failure; a FleetError thrown by a caller's callback passes unchanged.
 */
export function createWalletStore(pool: pg.Pool, outbox: OutboxWriter, opts: { ownedCacheSize?: number } = {}) {
  // Bounded LRU of what `owned` found: every signature starts with this read and its answer never
  // changes. Only found wallets are kept, so a wallet created after a miss is found next time.
  const ownedCache = new LRUCache<string, OwnedWallet>({ max: opts.ownedCacheSize ?? 10_000 });
  // Bounded LRU of the users (per chain) this process saw with an active wallet. That never stops
  // being true (wallets are never deleted, and setActive moves the flag within one transaction), so
  // their later creates are inserted inactive at once, and only that variant of a create's messages
  // is built and validated instead of both.
  const activeKnown = new LRUCache<string, true>({ max: opts.ownedCacheSize ?? 10_000 });
  const activeKey = (w: { userId: string; chain: Chain }) => `${w.chain}\u0000${w.userId}`;
  const write = (messages: readonly OutboxMessage[]) => withDatabaseErrors(() => outbox.write(messages));
  const pending: Array<{ messages: readonly OutboxMessage[]; resolve: () => void; reject: (e: unknown) => void }> = [];
  let flushing = false;
  async function flushRecords(): Promise<void> {
    flushing = true;
    while (pending.length > 0) {
      const batch = pending.splice(0, 256);
      try {
        await write(batch.flatMap((b) => b.messages));
        for (const b of batch) b.resolve();
      } catch (e) {
        if (batch.length === 1) batch[0]!.reject(e);
        else await Promise.all(batch.map((b) => write(b.messages).then(b.resolve, b.reject)));
      }
    }
    flushing = false;
  }

  // Unassigned pool keys read ahead, per kind; each is handed to one create of this process.
  const candidateLists = new Map<string, { keys: PoolCandidate[]; readAt: number }>();
  const candidateReads = new Map<string, Promise<void>>();
  const kindId = (kind: PoolKind) => `${kind.algorithm}/${kind.protectionLevel}`;
  const candidates = {
    /** A key no other create of this process holds; `undefined` when a fresh read found none left. */
    async next(kind: PoolKind): Promise<PoolCandidate | undefined> {
      const id = kindId(kind);
      for (let read = false; ; read = true) {
        const list = candidateLists.get(id);
        if (list && Date.now() - list.readAt < CANDIDATE_TTL_MS) {
          const key = list.keys.pop();
          if (key) return key;
        }
        if (read) return undefined;
        // Creates arriving while a read runs wait for it (one read for all of them).
        let reading = candidateReads.get(id);
        if (!reading) {
          reading = withDatabaseErrors(() => statements.poolCandidates(pool, kind, CANDIDATE_BATCH))
            .then((keys) => void candidateLists.set(id, { keys, readAt: Date.now() }))
            .finally(() => candidateReads.delete(id));
          candidateReads.set(id, reading);
        }
        await reading;
      }
    },
    /** Forgets the list: one of its keys was assigned elsewhere, so others may be too. */
    drop(kind: PoolKind): void {
      candidateLists.delete(kindId(kind));
    },
  };

  /** `insertWithKey` with the same retry of the active flag and the same duplicates as `insertWith`; `taken` when the key was assigned meanwhile. */
  const insertWithKey = (
    row: NewWallet,
    request: { key: string; hash: string } | undefined,
    messagesFor: (w: WalletRecord) => OutboxMessage[],
  ): Promise<WalletRecord | 'duplicate' | 'taken'> =>
    withDatabaseErrors(async () => {
      // The wallet's messages carry its createdAt, so it is set here rather than by the database.
      const createdAt = new Date();
      const record = (isActive: boolean): WalletRecord => ({ ...row, publicKey: Buffer.from(row.publicKey), isActive, createdAt: createdAt.toISOString() });
      const known = activeKnown.has(activeKey(row));
      const messages = { active: known ? [] : messagesFor(record(true)), inactive: messagesFor(record(false)) };
      return activeOrNot(
        request !== undefined,
        async (active) => {
          const w = await statements.insertWithKey(pool, outbox, { ...row, createdAt }, active, request, messages);
          if (!w) return 'taken' as const;
          activeKnown.set(activeKey(w), true);
          outbox.wake();
          return w;
        },
        known,
      );
    });

  const insertWith = (
    rowFor: (client: pg.ClientBase) => Promise<NewWallet | undefined>,
    request: { key: string; hash: string } | undefined,
    messagesFor: (w: WalletRecord) => OutboxMessage[],
  ): Promise<WalletRecord | 'duplicate' | 'pool-empty'> =>
    withDatabaseErrors(() =>
      activeOrNot(request !== undefined, (active) =>
        inTransaction(pool, async (client) => {
          const row = await rowFor(client);
          if (!row) return 'pool-empty' as const;
          const w = await statements.insert(client, row, active);
          if (request) await statements.insertCreateRequest(client, row.userId, request.key, request.hash, w.walletId);
          await outbox.enqueue(client, messagesFor(w));
          return w;
        }),
      ),
    );

  return {
    get: (userId: string, walletId: string) => withDatabaseErrors(() => statements.get(pool, userId, walletId)),

    /** The unchanging part of `userId`'s wallet `walletId` (see OwnedWallet), from memory once read. */
    owned: async (userId: string, walletId: string): Promise<OwnedWallet | undefined> => {
      const key = `${walletId}\u0000${userId}`;
      const hit = ownedCache.get(key);
      if (hit) return hit;
      const w = await withDatabaseErrors(() => statements.get(pool, userId, walletId));
      if (!w) return undefined;
      const { isActive: _active, label: _label, ...owned } = w;
      ownedCache.set(key, owned);
      return owned;
    },
    list: (userId: string, chain?: Chain) => withDatabaseErrors(() => statements.list(pool, userId, chain)),
    findCreateRequest: (userId: string, key: string) => withDatabaseErrors(() => statements.findCreateRequest(pool, userId, key)),

    /**
     * Inserts a wallet (and the idempotency record of its create request) with the messages
     * `messagesFor` builds for it, in one transaction. The first wallet of a user on a chain is the
     * active one; of two first wallets created at once, the partial unique index lets one be active
     * and the other is inserted again as inactive. Returns `duplicate` when the same idempotent
     * create finished first elsewhere (another replica, a redelivery).
     */
    insertWallet: (
      row: NewWallet,
      request: { key: string; hash: string } | undefined,
      messagesFor: (w: WalletRecord) => OutboxMessage[],
    ): Promise<WalletRecord | 'duplicate'> => insertWith(async () => row, request, messagesFor) as Promise<WalletRecord | 'duplicate'>,

    /**
     * As `insertWallet`, with a key of the pool, in one statement: the key is assigned by the
     * statement that inserts the wallet and its messages (`addressOf` derives the address from its
     * public key first), so a create that fails or crashes before its commit leaves the key in the
     * pool. Keys come from a list of unassigned ones read ahead (one read per `CANDIDATE_BATCH`
     * creates); one that another create assigned first costs a round trip and a fresh list, and
     * after two such misses the create takes the oldest free key in a transaction of its own
     * (`FOR UPDATE SKIP LOCKED`). `pool-empty` when no unassigned key of `kind` is left (or every
     * one is being taken by another create right now).
     */
    insertWalletFromPool: async (
      draft: WalletDraft,
      kind: PoolKind,
      addressOf: (publicKey: Uint8Array) => string,
      request: { key: string; hash: string } | undefined,
      messagesFor: (w: WalletRecord) => OutboxMessage[],
    ): Promise<WalletRecord | 'duplicate' | 'pool-empty'> => {
      for (let misses = 0; misses < 2; misses++) {
        const key = await candidates.next(kind);
        if (!key) break;
        const created = await insertWithKey({ ...draft, ...key, address: addressOf(new Uint8Array(key.publicKey)) }, request, messagesFor);
        if (created !== 'taken') return created;
        candidates.drop(kind);
      }
      return insertWith(
        async (client) => {
          const key = await statements.takePoolKey(client, kind, draft.walletId);
          return key && { ...draft, ...key, address: addressOf(new Uint8Array(key.publicKey)) };
        },
        request,
        messagesFor,
      );
    },

    /**
     * Makes the wallet its user's active one on its chain, with the messages `messagesFor` builds
     * from the wallet active before. `undefined` when the user has no such wallet; a wallet active
     * already is returned unchanged, with no messages.
     */
    activate: (
      userId: string,
      walletId: string,
      messagesFor: (w: WalletRecord, previous: string | undefined) => OutboxMessage[],
    ): Promise<WalletRecord | undefined> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          const w = await statements.get(client, userId, walletId, true);
          if (!w || w.isActive) return w;
          const previous = await statements.activate(client, w);
          await outbox.enqueue(client, messagesFor(w, previous));
          return { ...w, isActive: true };
        }),
      ),

    /**
     * Writes messages (audit events) through the outbox on their own; resolves once they are
     * committed. Concurrent calls share a transaction (group commit: one commit for the calls that
     * arrived while the previous one ran); a batch that fails is written again call by call, so one
     * call's failure is never another's.
     */
    record: (messages: OutboxMessage | readonly OutboxMessage[]): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        pending.push({ messages: Array.isArray(messages) ? messages : [messages as OutboxMessage], resolve, reject });
        if (!flushing) void flushRecords();
      }),
  };
}
