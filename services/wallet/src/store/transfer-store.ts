import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { databaseError, inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { OutboxWriter } from '../ports.js';

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

/**
 * The idempotent transfers' table, and the advisory lock that runs calls with one key one after
 * another. Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a database
 * failure. Messages given to a method are written through the outbox in the same transaction as
 * the state they describe.
 */
export function createTransferStore(pool: pg.Pool, outbox: OutboxWriter) {
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
    signNew: (
      walletId: string,
      key: string,
      sign: (nonce: number | undefined) => Promise<{ signedTx: Uint8Array; signature: string }>,
      messages: (signature: string) => readonly OutboxMessage[],
      nonces?: { chainNext(): Promise<number> },
    ): Promise<{ signedTx: Uint8Array; signature: string }> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          let nonce: number | undefined;
          if (nonces) {
            await client.query(`INSERT INTO evm_nonces (wallet_id, next_nonce) VALUES ($1, 0) ON CONFLICT (wallet_id) DO NOTHING`, [walletId]);
            const { rows } = await client.query<{ next_nonce: string }>(`SELECT next_nonce FROM evm_nonces WHERE wallet_id = $1 FOR UPDATE`, [walletId]);
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
