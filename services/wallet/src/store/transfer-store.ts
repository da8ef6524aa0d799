import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { databaseError, inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { OutboxWriter } from '../ports.js';

export type TransferStatus = 'new' | 'signed' | 'confirmed' | 'failed';

export interface TransferRecord {
  recipient: string;
  amount: string;
  status: TransferStatus;
  signedTx: Uint8Array | null;
  signature: string | null;
  errorCode: string | null;
}

interface Raw {
  recipient: string;
  amount: string;
  status: TransferStatus;
  signed_tx: Buffer | null;
  signature: string | null;
  error_code: string | null;
}

const toRecord = (r: Raw): TransferRecord => ({
  recipient: r.recipient,
  amount: r.amount,
  status: r.status,
  signedTx: r.signed_tx ? new Uint8Array(r.signed_tx) : null,
  signature: r.signature,
  errorCode: r.error_code,
});

export type TransferStore = ReturnType<typeof createTransferStore>;

/**
 * The idempotent transfers' table, and the advisory lock that runs calls with one key one after
 * another. Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a database
 * failure. Messages given to a method are written through the outbox in the same transaction as
 * the state they describe.
 */
export function createTransferStore(pool: pg.Pool, outbox: OutboxWriter) {
  return {
    /** The record of (wallet, key), created as `new` if there was none. */
    claim: (walletId: string, key: string, recipient: string, amount: string): Promise<TransferRecord> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<Raw>(
          `WITH ins AS (
             INSERT INTO transfers (wallet_id, idempotency_key, recipient, amount, status) VALUES ($1, $2, $3, $4::numeric, 'new')
             ON CONFLICT (wallet_id, idempotency_key) DO NOTHING
             RETURNING recipient, amount::text AS amount, status, signed_tx, signature, error_code)
           SELECT * FROM ins
           UNION ALL
           SELECT recipient, amount::text, status, signed_tx, signature, error_code FROM transfers
            WHERE wallet_id = $1 AND idempotency_key = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
          [walletId, key, recipient, amount],
        );
        return toRecord(rows[0]!);
      }),

    /** Records the signed bytes before they are sent (committed on its own: durable before the send). */
    signed: (walletId: string, key: string, signedTx: Uint8Array, signature: string, messages: readonly OutboxMessage[]): Promise<void> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          await client.query(
            `UPDATE transfers SET status = 'signed', signed_tx = $3, signature = $4, error_code = NULL, updated_at = now() WHERE wallet_id = $1 AND idempotency_key = $2`,
            [walletId, key, Buffer.from(signedTx), signature],
          );
          await outbox.enqueue(client, messages);
        }),
      ),

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
     * Runs `fn` while holding a transaction-scoped advisory lock on `name` (on a connection of its
     * own; `fn` uses the pool). Waits at most `waitMs` for another holder: then UNAVAILABLE.
     */
    async withKeyLock<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
      const client = await withDatabaseErrors(() => pool.connect());
      let broken = false;
      try {
        try {
          await client.query('BEGIN');
          await client.query(`SELECT set_config('lock_timeout', $1, true)`, [`${waitMs}ms`]);
          await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [name]);
        } catch (e) {
          broken = true;
          if ((e as { code?: string }).code === '55P03') {
            throw new FleetError(ErrorCode.UNAVAILABLE, 'a transfer with this idempotency key is still in progress', { retryable: true });
          }
          throw databaseError(e);
        }
        return await fn();
      } finally {
        // COMMIT or ROLLBACK alike end the transaction and free the lock; nothing else was written on it.
        await client.query(broken ? 'ROLLBACK' : 'COMMIT').catch(() => (broken = true));
        client.release(broken);
      }
    },
  };
}
