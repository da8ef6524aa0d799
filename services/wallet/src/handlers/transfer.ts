import { type SolanaAdapter, transactionSignature } from '@wallet-fleet/chains';
import { ErrorCode, FleetError, type ResultOf, isFleetError } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import type { Logger } from '@wallet-fleet/service-kit';
import type { TransferStore } from '../store/transfer-store.js';

export interface TransferDeps {
  transfers: TransferStore;
  /** Writes audit events through the outbox on their own. Throws UNAVAILABLE/INTERNAL. */
  record(messages: readonly OutboxMessage[]): Promise<void>;
  solana: Pick<SolanaAdapter, 'buildTransfer' | 'signTransaction' | 'sendAndConfirm' | 'fate'>;
  confirmTimeoutMs: number;
}

/** The audit events of one transfer, built by the caller (who knows user, wallet, correlation). */
export interface TransferAudit {
  /** The transfer is signed and about to leave: written before it is sent, or it is not sent. */
  signed(signature: string): OutboxMessage;
  confirmed(signature: string, extra?: Record<string, unknown>): OutboxMessage;
  failed(err: FleetError, signature?: string): OutboxMessage;
}

export interface TransferRequest {
  walletId: string;
  from: string;
  recipient: string;
  amount: string;
  idempotencyKey?: string | undefined;
  /** Builds and signs a new transfer (the KMS signature happens here). */
  sign(unsigned: Uint8Array): Promise<Uint8Array>;
  audit: TransferAudit;
  logger: Logger;
}

type Result = ResultOf<'wallet.transaction.transferSol'>;

const fromChain = (signature: string, status: Result['status'] = 'confirmed'): Result => ({ signature, status, source: 'chain', checkedOnChain: true });

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
 * - a transfer recorded as confirmed is checked on chain again, and the reply says whether the
 *   chain vouched for it (`source`, `checkedOnChain`);
 * - the same key with another recipient or amount → IDEMPOTENCY_CONFLICT.
 * Audit: the `signed` event is written before the bytes leave (with them, when there is a key):
 * when it cannot be written nothing is sent. The outcome event goes with the transfer's final
 * state; a transfer the chain accepted is reported as accepted even when its outcome event cannot
 * be written then (the row stays `signed`, and the next call with the key writes both).
 * Throws what sendAndConfirm throws, UNAVAILABLE (database, or a call with this key still running
 * after the confirmation timeout), IDEMPOTENCY_CONFLICT, SUBMISSION_FAILED.
 */
export async function transferSol(d: TransferDeps, r: TransferRequest): Promise<Result> {
  let outcomeWritten = false;
  /** An outcome event written on its own: its loss must not change the answer, so it is logged, not thrown. */
  const outcome = async (message: OutboxMessage) => {
    outcomeWritten = true;
    try {
      await d.record([message]);
    } catch (err) {
      r.logger.error({ err, auditEventId: message.messageId, routingKey: message.routingKey }, 'audit event of a transfer outcome could not be written');
    }
  };
  /** The final state and its event in one transaction; a failure to write it is not the transfer's failure. */
  const finishedConfirmed = async (key: string, signature: string): Promise<Result> => {
    outcomeWritten = true;
    try {
      await d.transfers.finished(r.walletId, key, 'confirmed', undefined, [r.audit.confirmed(signature)]);
    } catch (err) {
      r.logger.error({ err, signature }, 'transfer confirmed on chain but not recorded; the next call with its key records it');
    }
    return fromChain(signature);
  };
  const send = async (signed: Uint8Array): Promise<Result> => fromChain(await d.solana.sendAndConfirm(signed, { timeoutMs: d.confirmTimeoutMs }));
  const build = async () => r.sign(await d.solana.buildTransfer({ from: r.from, to: r.recipient, lamports: BigInt(r.amount) }));

  try {
    const key = r.idempotencyKey;
    if (!key) {
      const signed = await build();
      const signature = transactionSignature(signed);
      await d.record([r.audit.signed(signature)]);
      let result: Result;
      try {
        result = await send(signed);
      } catch (e) {
        await outcome(r.audit.failed(asFleet(e), signature));
        throw e;
      }
      await outcome(r.audit.confirmed(signature));
      return result;
    }

    return await d.transfers.withKeyLock(`transfer:${r.walletId}:${key}`, d.confirmTimeoutMs + 10_000, async () => {
      const rec = await d.transfers.claim(r.walletId, key, r.recipient, r.amount);
      if (rec.recipient !== r.recipient || rec.amount !== r.amount) {
        throw new FleetError(ErrorCode.IDEMPOTENCY_CONFLICT, 'this idempotency key was used for another transfer', { details: { signature: rec.signature } });
      }
      const failedBefore = () =>
        new FleetError(ErrorCode.SUBMISSION_FAILED, 'the transfer with this idempotency key failed on chain; use a new key to try again', {
          retryable: false,
          details: { signature: rec.signature },
        });
      const finishedFailed = async (signature: string, err: FleetError) => {
        outcomeWritten = true;
        await d.transfers.finished(r.walletId, key, 'failed', err.code, [r.audit.failed(err, signature)]);
      };

      if (rec.status === 'confirmed') {
        const result = await recheck(d, rec.signature!, rec.signedTx, r.logger);
        if (result === 'failed') {
          await finishedFailed(rec.signature!, failedBefore());
          throw failedBefore();
        }
        await outcome(r.audit.confirmed(rec.signature!, { replay: true, source: result.source, checkedOnChain: result.checkedOnChain }));
        return result;
      }
      if (rec.status === 'failed') throw failedBefore();

      /** Sends and records the outcome; on an error, asks the chain whether the bytes failed for good. */
      const settle = async (signed: Uint8Array): Promise<Result> => {
        const signature = transactionSignature(signed);
        try {
          await send(signed);
        } catch (e) {
          const fate = await d.solana.fate(signed).catch(() => 'pending' as const);
          if (fate === 'confirmed') return finishedConfirmed(key, signature);
          if (fate === 'failed') await finishedFailed(signature, isFleetError(e) ? e : new FleetError(ErrorCode.SUBMISSION_FAILED, 'failed on chain'));
          // Pending or expired: the row stays `signed`; the next call with this key decides.
          else await outcome(r.audit.failed(asFleet(e), signature));
          throw e;
        }
        return finishedConfirmed(key, signature);
      };

      if (rec.status === 'signed' && rec.signedTx) {
        const fate = await d.solana.fate(rec.signedTx);
        if (fate === 'confirmed') return finishedConfirmed(key, rec.signature!);
        if (fate === 'failed') {
          await finishedFailed(rec.signature!, failedBefore());
          throw failedBefore();
        }
        if (fate === 'pending') return settle(rec.signedTx);
        // expired and never seen: it can never land; a new transaction is safe.
      }
      const signed = await build();
      await d.transfers.signed(r.walletId, key, signed, transactionSignature(signed), [r.audit.signed(transactionSignature(signed))]);
      return settle(signed);
    });
  } catch (e) {
    if (!outcomeWritten) await outcome(r.audit.failed(asFleet(e)));
    throw e;
  }
}

/**
 * A transfer recorded as confirmed, asked of the chain again: the record alone is not proof (a
 * development runtime reset since, a ledger pruned). `failed` when the chain says it failed.
 */
async function recheck(d: TransferDeps, signature: string, signedTx: Uint8Array | null, logger: Logger): Promise<Result | 'failed'> {
  if (!signedTx) return { signature, status: 'confirmed', source: 'record', checkedOnChain: false };
  let fate: Awaited<ReturnType<TransferDeps['solana']['fate']>>;
  try {
    fate = await d.solana.fate(signedTx);
  } catch (err) {
    logger.warn({ err, signature }, 'chain not reachable; answering a repeated transfer from its record');
    return { signature, status: 'confirmed', source: 'record', checkedOnChain: false };
  }
  switch (fate) {
    case 'confirmed':
      return fromChain(signature);
    case 'pending':
      return fromChain(signature, 'submitted');
    case 'failed':
      return 'failed';
    case 'expired':
      // The chain does not know it and it can never land: say so, and do not send it again.
      return { signature, status: 'confirmed', source: 'record', checkedOnChain: true };
  }
}

const asFleet = (e: unknown): FleetError => (isFleetError(e) ? e : new FleetError(ErrorCode.INTERNAL, 'unexpected failure', { cause: e }));
