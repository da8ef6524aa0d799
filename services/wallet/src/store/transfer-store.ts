import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { databaseError, inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import type { OutboxWriter } from '../ports.js';
import { createKeyedMutex, createSemaphore } from './local-locks.js';

export type TransferStatus = 'new' | 'signed' | 'confirmed' | 'failed';

export interface TransferRecord {
  recipient: string;
  amount: string;
  /** `native`, or `token:<mint or contract>`. */
  asset: string;
  status: TransferStatus;
  signedTx: Uint8Array | null;
  signature: string | null;
  errorCode: string | null;
}

interface Raw {
  recipient: string;
  amount: string;
  asset: string;
  status: TransferStatus;
  signed_tx: Buffer | null;
  signature: string | null;
  error_code: string | null;
}

const toRecord = (r: Raw): TransferRecord => ({
  recipient: r.recipient,
  amount: r.amount,
  asset: r.asset,
  status: r.status,
  signedTx: r.signed_tx ? new Uint8Array(r.signed_tx) : null,
  signature: r.signature,
  errorCode: r.error_code,
});

export type TransferStore = ReturnType<typeof createTransferStore>;

/** Connections that hold advisory locks, apart from the pool the locked work uses. */
export interface LockConnections {
  pool: pg.Pool;
  /** At most this many locks held at once by this process (the lock pool's `max`). */
  max: number;
}

const isLockTimeout = (e: unknown) => (e as { code?: string }).code === '55P03';

/**
 * The idempotent transfers' table, and the advisory lock that runs calls with one key one after
 * another. Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a database
 * failure. Messages given to a method are written through the outbox in the same transaction as
 * the state they describe.
 *
 * Waiting never holds a connection of `pool`: callers of one process queue in-process per key (and
 * per EVM wallet for a nonce) before they touch the database, and locks are held on connections of
 * `locks.pool`, so only contention between processes waits inside PostgreSQL and the locked work
 * always finds `pool` connections.
 */
export function createTransferStore(pool: pg.Pool, outbox: OutboxWriter, locks: LockConnections) {
  const keys = createKeyedMutex();
  const slots = createSemaphore(locks.max);
  /** The lock connection of the `withKeyLock` a call runs inside: nested locks are taken on it. */
  const held = new AsyncLocalStorage<{ client: pg.PoolClient; queue: Promise<unknown> }>();
  const busy = () => new FleetError(ErrorCode.UNAVAILABLE, 'a transfer with this idempotency key is still in progress', { retryable: true });
  const replicaBusy = () => new FleetError(ErrorCode.UNAVAILABLE, 'too many keyed transfers in progress; retry', { retryable: true });
  const walletBusy = () => new FleetError(ErrorCode.UNAVAILABLE, 'another transfer of this wallet is still taking its nonce; retry', { retryable: true });

  /** Takes the lock `name` on `client` (in its open transaction), waiting at most `waitMs`. */
  const lockOn = async (client: pg.PoolClient, name: string, waitMs: number) => {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${waitMs}ms`]);
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [name]);
  };

  return {
    /** The record of (wallet, key), created as `new` if there was none. */
    claim: (walletId: string, key: string, recipient: string, amount: string, asset: string): Promise<TransferRecord> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<Raw>(
          `WITH ins AS (
             INSERT INTO transfers (wallet_id, idempotency_key, recipient, amount, asset, status) VALUES ($1, $2, $3, $4::numeric, $5, 'new')
             ON CONFLICT (wallet_id, idempotency_key) DO NOTHING
             RETURNING recipient, amount::text AS amount, asset, status, signed_tx, signature, error_code)
           SELECT * FROM ins
           UNION ALL
           SELECT recipient, amount::text, asset, status, signed_tx, signature, error_code FROM transfers
            WHERE wallet_id = $1 AND idempotency_key = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
          [walletId, key, recipient, amount, asset],
        );
        return toRecord(rows[0]!);
      }),

    /**
     * Signs with `sign` and records the signed bytes before they are sent, in one transaction
     * committed on its own (durable before the send). With `nonces` (EVM), the wallet's next nonce
     * is allocated under its row lock: the larger of the stored one and the chain's pending count
     * (`nonces.chainNext`, asked while the lock is held), advanced only when the signed bytes are
     * recorded with it. A signing that fails (policy, KMS, estimation) rolls back, so its nonce is
     * given to the next transfer and no gap stalls the wallet; concurrent transfers of one wallet
     * sign one after another. Throws what `sign` and `chainNext` throw, UNAVAILABLE, INTERNAL.
     */
    signNew: async (
      walletId: string,
      key: string,
      sign: (nonce: number | undefined) => Promise<{ signedTx: Uint8Array; signature: string }>,
      messages: (signature: string) => readonly OutboxMessage[],
      nonces?: { chainNext(): Promise<number>; waitMs: number },
    ): Promise<{ signedTx: Uint8Array; signature: string }> => {
      const run = () =>
        withDatabaseErrors(() =>
          inTransaction(pool, async (client) => {
            let nonce: number | undefined;
            if (nonces) {
              await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${nonces.waitMs}ms`]);
              await client.query(`INSERT INTO evm_nonces (wallet_id, next_nonce) VALUES ($1, 0) ON CONFLICT (wallet_id) DO NOTHING`, [walletId]);
              let rows: { next_nonce: string }[];
              try {
                ({ rows } = await client.query<{ next_nonce: string }>(`SELECT next_nonce FROM evm_nonces WHERE wallet_id = $1 FOR UPDATE`, [walletId]));
              } catch (e) {
                throw isLockTimeout(e) ? walletBusy() : e;
              }
              nonce = Math.max(Number(rows[0]!.next_nonce), await nonces.chainNext());
            }
            const signed = await sign(nonce);
            await client.query(
              `UPDATE transfers SET status = 'signed', signed_tx = $3, signature = $4, nonce = $5, error_code = NULL, updated_at = now() WHERE wallet_id = $1 AND idempotency_key = $2`,
              [walletId, key, Buffer.from(signed.signedTx), signed.signature, nonce ?? null],
            );
            if (nonce !== undefined) {
              await client.query(`UPDATE evm_nonces SET next_nonce = $2, updated_at = now() WHERE wallet_id = $1`, [walletId, nonce + 1]);
            }
            await outbox.enqueue(client, messages(signed.signature));
            return signed;
          }),
        );
      if (!nonces) return run();
      // One transfer per wallet and process waits for the nonce row; the others wait here, holding no connection.
      const release = await keys.acquire(`nonce:${walletId}`, nonces.waitMs, walletBusy);
      try {
        return await run();
      } finally {
        release();
      }
    },

    finished: (
      walletId: string,
      key: string,
      status: 'confirmed' | 'failed',
      errorCode: string | undefined,
      messages: readonly OutboxMessage[],
    ): Promise<void> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          await client.query(`UPDATE transfers SET status = $3, error_code = $4, updated_at = now() WHERE wallet_id = $1 AND idempotency_key = $2`, [
            walletId,
            key,
            status,
            errorCode ?? null,
          ]);
          await outbox.enqueue(client, messages);
        }),
      ),

    /**
     * Runs `fn` while holding a transaction-scoped advisory lock on `name`, waiting at most `waitMs`
     * in all (in-process behind other calls for `name`, for a lock connection, then in PostgreSQL
     * behind other processes): then UNAVAILABLE. The lock is held on a connection of the lock pool;
     * `fn` uses the main pool. A `withKeyLock` inside `fn` takes its lock on the outer one's
     * connection (no second lock connection, so nesting cannot exhaust the lock pool); that lock is
     * then held by PostgreSQL until the outer call ends.
     */
    async withKeyLock<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
      const deadline = Date.now() + waitMs;
      const left = () => Math.max(1, deadline - Date.now());
      const unlockKey = await keys.acquire(name, waitMs, busy);
      try {
        const outer = held.getStore();
        if (outer) {
          const take = outer.queue.then(async () => {
            await outer.client.query('SAVEPOINT nested_lock');
            try {
              await lockOn(outer.client, name, left());
              await outer.client.query('RELEASE SAVEPOINT nested_lock');
            } catch (e) {
              // Undoes the failed wait only; the outer lock stays held.
              await outer.client.query('ROLLBACK TO SAVEPOINT nested_lock');
              throw e;
            }
          });
          outer.queue = take.catch(() => undefined);
          try {
            await take;
          } catch (e) {
            throw isLockTimeout(e) ? busy() : databaseError(e);
          }
          return await fn();
        }
        const freeSlot = await slots.acquire(left(), replicaBusy);
        try {
          const client = await withDatabaseErrors(() => locks.pool.connect());
          let broken = false;
          try {
            try {
              await client.query('BEGIN');
              await lockOn(client, name, left());
            } catch (e) {
              broken = true;
              throw isLockTimeout(e) ? busy() : databaseError(e);
            }
            return await held.run({ client, queue: Promise.resolve() }, fn);
          } finally {
            // COMMIT or ROLLBACK alike end the transaction and free the lock; nothing else was written on it.
            await client.query(broken ? 'ROLLBACK' : 'COMMIT').catch(() => (broken = true));
            client.release(broken);
          }
        } finally {
          freeSlot();
        }
      } finally {
        unlockKey();
      }
    },
  };
}
