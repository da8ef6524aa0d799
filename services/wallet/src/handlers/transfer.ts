import { type SolanaAdapter, transactionSignature } from '@wallet-fleet/chains';
import { ErrorCode, FleetError, isFleetError } from '@wallet-fleet/contracts';
import { databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import { transferStore } from '../store/transfer-store.js';

export interface TransferDeps {
  pool: pg.Pool;
  solana: Pick<SolanaAdapter, 'buildTransfer' | 'signTransaction' | 'sendAndConfirm' | 'fate'>;
  confirmTimeoutMs: number;
}

export interface TransferRequest {
  walletId: string;
  from: string;
  recipient: string;
  amount: string;
  idempotencyKey?: string | undefined;
  /** Builds and signs a new transfer (the KMS signature happens here). */
  sign(unsigned: Uint8Array): Promise<Uint8Array>;
}

type Result = { signature: string; status: 'confirmed' };

/**
 * Sends lamports. Without an idempotency key: build, sign, send, confirm. With one, at most one
 * transfer per (wallet, key) ever reaches the chain, across retries, timeouts, crashes and
 * concurrent calls:
 * - calls with the same key run one after another (an advisory lock held by a transaction, freed
 *   when the holder ends or dies);
 * - the signed bytes are committed before they are sent, so a retry finds them and asks the chain
 *   what became of them: confirmed → that answer again; failed on chain → SUBMISSION_FAILED again;
 *   seen or still sendable (blockhash valid) → the same bytes sent again (the chain dedupes by
 *   signature); expired unseen → it can never land, a new transaction is signed;
 * - the same key with another recipient or amount → IDEMPOTENCY_CONFLICT.
 * Throws what sendAndConfirm throws, UNAVAILABLE (database, or a call with this key still running
 * after the confirmation timeout), IDEMPOTENCY_CONFLICT.
 */
export async function transferSol(d: TransferDeps, r: TransferRequest): Promise<Result> {
  const send = async (signed: Uint8Array): Promise<Result> => ({
    signature: await d.solana.sendAndConfirm(signed, { timeoutMs: d.confirmTimeoutMs }),
    status: 'confirmed',
  });
  const build = async () => r.sign(await d.solana.buildTransfer({ from: r.from, to: r.recipient, lamports: BigInt(r.amount) }));
  const key = r.idempotencyKey;
  if (!key) return send(await build());

  return withKeyLock(d.pool, `transfer:${r.walletId}:${key}`, d.confirmTimeoutMs + 10_000, async () => {
    const db = <T>(p: Promise<T>) => p.catch((e: unknown) => Promise.reject(databaseError(e)));
    const rec = await db(transferStore.claim(d.pool, r.walletId, key, r.recipient, r.amount));
    if (rec.recipient !== r.recipient || rec.amount !== r.amount) {
      throw new FleetError(ErrorCode.IDEMPOTENCY_CONFLICT, 'this idempotency key was used for another transfer', { details: { signature: rec.signature } });
    }
    const failedBefore = () =>
      new FleetError(ErrorCode.SUBMISSION_FAILED, 'the transfer with this idempotency key failed on chain; use a new key to try again', {
        retryable: false,
        details: { signature: rec.signature },
      });
    if (rec.status === 'confirmed') return { signature: rec.signature!, status: 'confirmed' };
    if (rec.status === 'failed') throw failedBefore();

    /** Sends and records the outcome; on an error, asks the chain whether the bytes failed for good. */
    const settle = async (signed: Uint8Array): Promise<Result> => {
      try {
        const result = await send(signed);
        await db(transferStore.finished(d.pool, r.walletId, key, 'confirmed'));
        return result;
      } catch (e) {
        const fate = await d.solana.fate(signed).catch(() => 'pending' as const);
        if (fate === 'failed') await db(transferStore.finished(d.pool, r.walletId, key, 'failed', isFleetError(e) ? e.code : ErrorCode.SUBMISSION_FAILED));
        if (fate === 'confirmed') {
          await db(transferStore.finished(d.pool, r.walletId, key, 'confirmed'));
          return { signature: transactionSignature(signed), status: 'confirmed' };
        }
        // Pending or expired: the row stays `signed`; the next call with this key decides.
        throw e;
      }
    };

    if (rec.status === 'signed' && rec.signedTx) {
      const fate = await d.solana.fate(rec.signedTx);
      if (fate === 'confirmed') {
        await db(transferStore.finished(d.pool, r.walletId, key, 'confirmed'));
        return { signature: rec.signature!, status: 'confirmed' };
      }
      if (fate === 'failed') {
        await db(transferStore.finished(d.pool, r.walletId, key, 'failed', ErrorCode.SUBMISSION_FAILED));
        throw failedBefore();
      }
      if (fate === 'pending') return settle(rec.signedTx);
      // expired and never seen: it can never land; a new transaction is safe.
    }
    const signed = await build();
    await db(transferStore.signed(d.pool, r.walletId, key, signed, transactionSignature(signed)));
    return settle(signed);
  });
}

/**
 * Runs `fn` while holding a transaction-scoped advisory lock on `name` (on a connection of its
 * own; `fn` uses the pool). Waits at most `waitMs` for another holder: then UNAVAILABLE.
 */
async function withKeyLock<T>(pool: pg.Pool, name: string, waitMs: number, fn: () => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw databaseError(e);
  }
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
}
