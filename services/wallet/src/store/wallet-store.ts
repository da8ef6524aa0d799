import type { Chain, Wallet } from '@wallet-fleet/contracts';
import type { ProtectionLevel } from '@wallet-fleet/kms';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
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

export type WalletStore = ReturnType<typeof createWalletStore>;

/**
 * All SQL of wallets. Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a
 * database failure; a FleetError thrown by a caller's callback passes unchanged.
 */
export function createWalletStore(pool: pg.Pool, outbox: OutboxWriter, opts: { ownedCacheSize?: number } = {}) {
  // Bounded LRU (a Map iterates in insertion order) of what `owned` found: every signature starts
  // with this read and its answer never changes. Only found wallets are kept, so a wallet created
  // after a miss is found next time.
  const ownedCache = new Map<string, OwnedWallet>();
  const ownedCacheSize = opts.ownedCacheSize ?? 10_000;
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

  const insertWith = (
    rowFor: (client: pg.ClientBase) => Promise<NewWallet | undefined>,
    request: { key: string; hash: string } | undefined,
    messagesFor: (w: WalletRecord) => OutboxMessage[],
  ): Promise<WalletRecord | 'duplicate' | 'pool-empty'> =>
    withDatabaseErrors(async () => {
      for (const active of ['if-first', false] as const) {
        try {
          return await inTransaction(pool, async (client) => {
            const row = await rowFor(client);
            if (!row) return 'pool-empty' as const;
            const w = await statements.insert(client, row, active);
            if (request) await statements.insertCreateRequest(client, row.userId, request.key, request.hash, w.walletId);
            await outbox.enqueue(client, messagesFor(w));
            return w;
          });
        } catch (e) {
          const violated = uniqueViolation(e);
          if (violated === 'wallets_one_active' && active === 'if-first') continue;
          // key_pool_wallet_id_key: the same idempotent create took a pool key first elsewhere.
          if (request && (violated === 'wallets_pkey' || violated === 'create_requests_pkey' || violated === 'key_pool_wallet_id_key'))
            return 'duplicate' as const;
          throw e;
        }
      }
      throw new Error('unreachable: the inactive insert cannot violate wallets_one_active');
    });

  return {
    get: (userId: string, walletId: string) => withDatabaseErrors(() => statements.get(pool, userId, walletId)),

    /** The unchanging part of `userId`'s wallet `walletId` (see OwnedWallet), from memory once read. */
    owned: async (userId: string, walletId: string): Promise<OwnedWallet | undefined> => {
      const key = `${walletId}\u0000${userId}`;
      const hit = ownedCache.get(key);
      if (hit) {
        ownedCache.delete(key);
        ownedCache.set(key, hit);
        return hit;
      }
      const w = await withDatabaseErrors(() => statements.get(pool, userId, walletId));
      if (!w) return undefined;
      const { isActive: _active, label: _label, ...owned } = w;
      ownedCache.set(key, owned);
      if (ownedCache.size > ownedCacheSize) ownedCache.delete(ownedCache.keys().next().value!);
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
     * As `insertWallet`, with a key of the pool: the key is assigned in the same transaction that
     * inserts the wallet (`addressOf` derives the address from its public key), so a create that
     * fails or crashes before COMMIT leaves the key in the pool. `pool-empty` when no unassigned key
     * of `kind` is left (or every one is being taken by another create right now).
     */
    insertWalletFromPool: (
      draft: WalletDraft,
      kind: PoolKind,
      addressOf: (publicKey: Uint8Array) => string,
      request: { key: string; hash: string } | undefined,
      messagesFor: (w: WalletRecord) => OutboxMessage[],
    ): Promise<WalletRecord | 'duplicate' | 'pool-empty'> =>
      insertWith(
        async (client) => {
          const key = await statements.takePoolKey(client, kind, draft.walletId);
          return key && { ...draft, ...key, address: addressOf(new Uint8Array(key.publicKey)) };
        },
        request,
        messagesFor,
      ),

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
