import type pg from 'pg';

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

/** The idempotent transfers' table. Raw driver errors are thrown (callers map them). */
export const transferStore = {
  /** The record of (wallet, key), created as `new` if there was none. */
  async claim(db: pg.ClientBase | pg.Pool, walletId: string, key: string, recipient: string, amount: string): Promise<TransferRecord> {
    const { rows } = await db.query<Raw>(
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
  },

  /** Records the signed bytes before they are sent (committed on its own: durable before the send). */
  async signed(db: pg.Pool, walletId: string, key: string, signedTx: Uint8Array, signature: string): Promise<void> {
    await db.query(`UPDATE transfers SET status = 'signed', signed_tx = $3, signature = $4, error_code = NULL, updated_at = now() WHERE wallet_id = $1 AND idempotency_key = $2`, [
      walletId,
      key,
      Buffer.from(signedTx),
      signature,
    ]);
  },

  async finished(db: pg.Pool, walletId: string, key: string, status: 'confirmed' | 'failed', errorCode?: string): Promise<void> {
    await db.query(`UPDATE transfers SET status = $3, error_code = $4, updated_at = now() WHERE wallet_id = $1 AND idempotency_key = $2`, [walletId, key, status, errorCode ?? null]);
  },
};
