import { ErrorCode, FleetError, type ResultOf, isFleetError } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import type { Logger } from '@wallet-fleet/service-kit';
import type { TransferStore } from '../store/transfer-store.js';

export interface TransferDeps {
  transfers: TransferStore;
  /** Writes audit events through the outbox on their own. Throws UNAVAILABLE/INTERNAL. */
  record(messages: readonly OutboxMessage[]): Promise<void>;
}

/** The audit events of one transfer, built by the caller (who knows user, wallet, correlation). */
export interface TransferAudit {
  /** The transfer is signed and about to leave: written before it is sent, or it is not sent. */
  signed(signature: string): OutboxMessage;
  confirmed(signature: string, extra?: Record<string, unknown>): OutboxMessage;
  failed(err: FleetError, signature?: string): OutboxMessage;
}

/**
 * What `rail.sign` (and the signing path) throws when the request was carried out already, by the
 * execution of its approval: nothing is signed and nothing more is recorded for this call (the
 * execution was audited); the handler answers with `result`, the execution's own. A FleetError so
 * that it passes the stores' error translation unchanged, and so that, were it ever not turned
 * into that answer, the caller would still learn the truth: APPROVAL_CLOSED, `completed`.
 */
export class ExecutedOnApproval extends FleetError {
  constructor(
    readonly approvalId: string,
    readonly result: Record<string, unknown>,
  ) {
    super(ErrorCode.APPROVAL_CLOSED, `carried out by the execution of approval ${approvalId}`, { details: { approvalId, status: 'completed' } });
    this.name = 'ExecutedOnApproval';
  }
}

/** What became of signed bytes that may or may not have reached the chain (see the adapters' `fate`). */
export type Fate = 'confirmed' | 'failed' | 'pending' | 'expired';

/**
 * One chain's way to move one asset: how a transaction is built and signed (decoder, policy and
 * KMS inside `sign`), sent and asked about. Solana and EVM bytes alike are carried as bytes.
 */
export interface TransferRail {
  /** Builds and signs a new transaction; `nonce` is given when `chainNonce` is set. */
  sign(nonce: number | undefined): Promise<Uint8Array>;
  /** The signature (Solana) or hash (EVM) the chain knows the signed bytes by. */
  idOf(signed: Uint8Array): string;
  /** Sends and waits for the confirmation; returns `idOf(signed)`. Throws what the adapter throws. */
  sendAndConfirm(signed: Uint8Array): Promise<string>;
  fate(signed: Uint8Array): Promise<Fate>;
  /** Chains with account nonces (EVM): the next nonce the chain expects from the wallet, pending included. */
  chainNonce?(): Promise<number>;
}

export interface TransferRequest {
  walletId: string;
  recipient: string;
  amount: string;
  /** `native`, or `token:<mint or contract>`: part of what an idempotency key stands for. */
  asset: string;
  /** Only `transferSol` may omit it (SOL native). */
  idempotencyKey?: string | undefined;
  rail: TransferRail;
  audit: TransferAudit;
  logger: Logger;
}

type Result = ResultOf<'wallet.transaction.transfer'>;

const fromChain = (signature: string, status: Result['status'] = 'confirmed'): Result => ({ signature, status, source: 'chain', checkedOnChain: true });

/**
 * Moves an asset (see TransferRail). Without an idempotency key (SOL native only): build, sign,
 * send, confirm. With one, at most one transfer per (wallet, key) ever reaches the chain, across
 * retries, timeouts, crashes and concurrent calls:
 * - calls with the same key run one after another (an advisory lock held by a transaction, freed
 *   when the holder ends or dies);
 * - the signed bytes (and an EVM nonce) are committed before they are sent, so a retry finds them
 *   and asks the chain what became of them: confirmed → that answer; failed on chain →
 *   SUBMISSION_FAILED again; seen or still sendable (blockhash valid, nonce unused) → the same
 *   bytes sent again (the chain dedupes them); expired unseen (blockhash expired, nonce taken) → it
 *   can never land, a new transaction is signed;
 * - a transfer recorded as confirmed is answered from that record, without asking the chain again
 *   and without another audit event (nothing is signed or sent): `source: "record"`,
 *   `checkedOnChain: false`;
 * - the same key with another recipient, amount or asset → IDEMPOTENCY_CONFLICT.
 * Audit: the `signed` event is written before the bytes leave (with them, when there is a key):
 * when it cannot be written nothing is sent. The outcome event goes with the transfer's final
 * state; a transfer the chain accepted is reported as accepted even when its outcome event cannot
 * be written then (the row stays `signed`, and the next call with the key writes both).
 * Throws what the rail throws (ExecutedOnApproval with no event written), UNAVAILABLE (database, or a call with this key still running after
 * `lockWaitMs`), IDEMPOTENCY_CONFLICT, SUBMISSION_FAILED.
 */
export async function transfer(d: TransferDeps & { lockWaitMs: number }, r: TransferRequest): Promise<Result> {
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
  const send = async (signed: Uint8Array): Promise<Result> => fromChain(await r.rail.sendAndConfirm(signed));

  try {
    const key = r.idempotencyKey;
    if (!key) {
      if (r.rail.chainNonce) throw FleetError.validation([{ path: 'idempotencyKey', message: 'required' }]);
      const signed = await r.rail.sign(undefined);
      const signature = r.rail.idOf(signed);
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

    return await d.transfers.withKeyLock(`transfer:${r.walletId}:${key}`, d.lockWaitMs, async () => {
      const rec = await d.transfers.claim(r.walletId, key, r.recipient, r.amount, r.asset);
      if (rec.recipient !== r.recipient || rec.amount !== r.amount || rec.asset !== r.asset) {
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
        // Answered from the record: the chain confirmed it once, and asking again on every repeat
        // would cost a chain call and an audit row per retry of a client.
        outcomeWritten = true;
        return { signature: rec.signature!, status: 'confirmed', source: 'record', checkedOnChain: false };
      }
      if (rec.status === 'failed') {
        outcomeWritten = true;
        throw failedBefore();
      }

      /** Sends and records the outcome; on an error, asks the chain whether the bytes failed for good. */
      const settle = async (signed: Uint8Array): Promise<Result> => {
        const signature = r.rail.idOf(signed);
        try {
          await send(signed);
        } catch (e) {
          const fate = await r.rail.fate(signed).catch(() => 'pending' as const);
          if (fate === 'confirmed') return finishedConfirmed(key, signature);
          if (fate === 'failed') await finishedFailed(signature, isFleetError(e) ? e : new FleetError(ErrorCode.SUBMISSION_FAILED, 'failed on chain'));
          // Pending or expired: the row stays `signed`; the next call with this key decides.
          else await outcome(r.audit.failed(asFleet(e), signature));
          throw e;
        }
        return finishedConfirmed(key, signature);
      };

      if (rec.status === 'signed' && rec.signedTx) {
        const fate = await r.rail.fate(rec.signedTx);
        if (fate === 'confirmed') return finishedConfirmed(key, rec.signature!);
        if (fate === 'failed') {
          await finishedFailed(rec.signature!, failedBefore());
          throw failedBefore();
        }
        if (fate === 'pending') return settle(rec.signedTx);
        // expired and never seen: it can never land; a new transaction is safe.
      }
      const { signedTx } = await d.transfers.signNew(
        r.walletId,
        key,
        async (nonce) => {
          const signed = await r.rail.sign(nonce);
          return { signedTx: signed, signature: r.rail.idOf(signed) };
        },
        (signature) => [r.audit.signed(signature)],
        r.rail.chainNonce ? { chainNext: () => r.rail.chainNonce!(), waitMs: d.lockWaitMs } : undefined,
      );
      return settle(signedTx);
    });
  } catch (e) {
    if (!outcomeWritten && !(e instanceof ExecutedOnApproval)) await outcome(r.audit.failed(asFleet(e)));
    throw e;
  }
}

const asFleet = (e: unknown): FleetError => (isFleetError(e) ? e : new FleetError(ErrorCode.INTERNAL, 'unexpected failure', { cause: e }));
