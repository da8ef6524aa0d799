import {
  Connection,
  PublicKey,
  SIGNATURE_LENGTH_IN_BYTES as SIGNATURE_BYTES,
  SystemProgram,
  Transaction,
  VersionedTransaction,
  SendTransactionError,
  type Commitment,
  type TransactionError,
} from '@solana/web3.js';
import bs58 from 'bs58';
import {
  TOKEN_PROGRAM_ID as TOKEN_PROGRAM,
  TOKEN_2022_PROGRAM_ID as TOKEN_2022_PROGRAM,
  createAssociatedTokenAccountIdempotentInstruction,
  createTransferCheckedInstruction,
  getAssociatedTokenAddressSync,
  unpackMint,
} from '@solana/spl-token';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { type Ed25519Signer, signVerifiedEd25519 } from '../signers.js';
import type { NativeTransfer, TransactionReport, TransactionTransfers } from '../transfers.js';
import { type ParsedSolanaTransaction, parseSolanaTransaction, parsedSolanaTransaction } from './parse.js';
import { transfersInTransaction } from './transfers.js';

export interface SolanaAdapterOptions {
  rpcUrl: string;
  /** Commitment for reads and for confirmation; default `confirmed`. */
  commitment?: 'processed' | 'confirmed' | 'finalized';
  /** Deadline of one RPC call; default 10 s. */
  requestTimeoutMs?: number;
}

export interface SolanaTokenBalance {
  mint: string;
  /** The token account holding the balance. */
  account: string;
  /** Base units. */
  amount: bigint;
  decimals: number;
}

export interface SolanaAdapter {
  /** Lamports held by `address` (0 for an account that does not exist). Throws VALIDATION_FAILED, UNAVAILABLE. */
  getBalance(address: string): Promise<bigint>;
  /** SPL token accounts (Token and Token-2022 programs) owned by `owner`. Throws VALIDATION_FAILED, UNAVAILABLE. */
  getTokenBalances(owner: string): Promise<SolanaTokenBalance[]>;
  /**
   * A serialized, unsigned legacy transaction moving `lamports` from `from` (fee payer and only
   * signer) to `to`, with the cluster's latest blockhash. Throws INVALID_RECIPIENT,
   * VALIDATION_FAILED, UNAVAILABLE.
   */
  buildTransfer(params: { from: string; to: string; lamports: bigint }): Promise<Uint8Array>;
  /**
   * A serialized, unsigned legacy transaction moving `amount` base units of the SPL token `mint`
   * from the associated token account of `from` (fee payer and only signer) to that of `to`, with
   * `transferChecked` and the decimals read from the mint; the token program (Token or Token-2022)
   * is the mint's owner. When `to` has no associated token account yet, the transaction creates it
   * first (the idempotent instruction, rent paid by `from`), so a concurrent creation does not fail
   * it. Token-2022 mints whose extensions need more than `transferChecked` (transfer fees, hooks)
   * fail on chain. Throws INVALID_RECIPIENT, VALIDATION_FAILED (`mint` is not a mint), UNAVAILABLE.
   */
  buildTokenTransfer(params: { from: string; to: string; mint: string; amount: bigint }): Promise<Uint8Array>;
  /**
   * Adds the signer's signature to a serialized transaction (legacy or v0; as bytes, or as read by
   * `parseSolanaTransaction`) and returns the new bytes; other signatures are kept. Throws
   * VALIDATION_FAILED (not a transaction, or the signer is not one of its required signers) and
   * SIGNING_FAILED (the signer returned a signature that does not verify).
   */
  signTransaction(transaction: Uint8Array | ParsedSolanaTransaction, signer: Ed25519Signer): Promise<Uint8Array>;
  /**
   * Submits a fully signed transaction (with preflight unless `skipPreflight`: then a failing
   * transaction executes, pays its fee and its error comes from the status) and polls getSignatureStatuses until it
   * reaches the adapter's commitment. Returns the base58 signature.
   * Throws INSUFFICIENT_FUNDS, INVALID_RECIPIENT (recipient left below rent exemption),
   * SIGNING_FAILED (a signature does not verify), SUBMISSION_FAILED (rejected or failed; retryable
   * when the blockhash expired), UNAVAILABLE (RPC unreachable before the transaction was accepted:
   * resending the same bytes is safe), TIMEOUT (accepted but not confirmed in `timeoutMs`: check
   * `details.signature` before building a new transaction, it may still land).
   */
  sendAndConfirm(signedTransaction: Uint8Array, options?: { timeoutMs?: number; pollMs?: number; skipPreflight?: boolean }): Promise<string>;
  /**
   * What became of a signed transaction that may or may not have been sent: `confirmed` (landed
   * at the adapter's commitment), `failed` (landed with an error), `pending` (seen but not yet
   * confirmed, or not seen while its blockhash is still valid: it may still land, so send the same
   * bytes again rather than new ones), `expired` (not seen and its blockhash expired: it can never
   * land, a new transaction is safe). Throws VALIDATION_FAILED, UNAVAILABLE.
   */
  fate(signedTransaction: Uint8Array): Promise<'confirmed' | 'failed' | 'pending' | 'expired'>;
  /**
   * What the transaction `signature` paid to `to` in lamports: its net balance change there (see
   * TransactionTransfers), read at `confirmed` at least (a `processed` one is `pending`). Throws
   * VALIDATION_FAILED (not a signature or not an address), UNAVAILABLE (RPC down or failing, or a
   * node that does not serve getTransaction: without it nothing can be said of the amount).
   */
  nativeTransfers(signature: string, to: string): Promise<TransactionTransfers>;
  /**
   * Every transfer the transaction `signature` makes, each at its on-chain identity (see
   * OnChainTransfer): System `transfer`/`transferWithSeed` as native, SPL Token and Token-2022
   * `transfer`/`transferChecked` with the destination token account's owner as `to` and the mint and
   * decimals from the transaction's token balances; outer and inner instructions alike. Read at
   * `confirmed` at least (`processed` is `pending`); `finality.final` once the signature status is
   * `finalized`, whatever the adapter's own commitment. Throws VALIDATION_FAILED (not a signature),
   * UNAVAILABLE (RPC down or failing, a node that does not serve getTransaction, or one whose
   * answer lacks the token balances a transfer needs).
   */
  transfersOf(signature: string): Promise<TransactionReport>;
  /** Asks the node's faucet (devnet, local runtime) for `lamports`; returns the airdrop's signature. Throws VALIDATION_FAILED, UNAVAILABLE. */
  requestAirdrop(address: string, lamports: bigint): Promise<string>;
}

/** A Solana adapter over JSON-RPC over HTTP only (no websocket: confirmation polls). */
export function createSolanaAdapter(options: SolanaAdapterOptions): SolanaAdapter {
  const commitment: Commitment = options.commitment ?? 'confirmed';
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const connection = new Connection(options.rpcUrl, {
    commitment,
    disableRetryOnRateLimit: true,
    // Every call gets a deadline: without one a hung RPC node hangs the caller.
    fetch: (input, init) => fetch(input as string, { ...(init as RequestInit), signal: AbortSignal.timeout(requestTimeoutMs) }) as never,
  });

  const rpc = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (e) {
      throw rpcFailure(what, e);
    }
  };

  return {
    async getBalance(address) {
      const key = parseKey(address, ErrorCode.VALIDATION_FAILED, 'address');
      return BigInt(await rpc('getBalance', () => connection.getBalance(key, commitment)));
    },

    async getTokenBalances(owner) {
      const key = parseKey(owner, ErrorCode.VALIDATION_FAILED, 'owner');
      const lists = await Promise.all(
        [TOKEN_PROGRAM, TOKEN_2022_PROGRAM].map((programId) =>
          rpc('getTokenAccountsByOwner', () => connection.getParsedTokenAccountsByOwner(key, { programId }, commitment)),
        ),
      );
      const out: SolanaTokenBalance[] = [];
      for (const list of lists) {
        for (const { pubkey, account } of list.value) {
          const info = (account.data as { parsed?: { info?: Record<string, any> } }).parsed?.info;
          if (!info?.mint || !info.tokenAmount) continue;
          out.push({
            mint: String(info.mint),
            account: pubkey.toBase58(),
            amount: BigInt(info.tokenAmount.amount),
            decimals: Number(info.tokenAmount.decimals),
          });
        }
      }
      return out;
    },

    async buildTransfer({ from, to, lamports }) {
      const fromKey = parseKey(from, ErrorCode.VALIDATION_FAILED, 'from');
      const toKey = parseKey(to, ErrorCode.INVALID_RECIPIENT, 'recipient');
      if (typeof lamports !== 'bigint' || lamports <= 0n || lamports >= 2n ** 64n) {
        throw FleetError.validation([{ path: 'lamports', message: 'must be a positive 64-bit integer' }]);
      }
      const { blockhash, lastValidBlockHeight } = await rpc('getLatestBlockhash', () => connection.getLatestBlockhash(commitment));
      const tx = new Transaction({ feePayer: fromKey, blockhash, lastValidBlockHeight });
      tx.add(SystemProgram.transfer({ fromPubkey: fromKey, toPubkey: toKey, lamports }));
      return tx.serialize({ requireAllSignatures: false, verifySignatures: false });
    },

    async buildTokenTransfer({ from, to, mint, amount }) {
      const fromKey = parseKey(from, ErrorCode.VALIDATION_FAILED, 'from');
      const toKey = parseKey(to, ErrorCode.INVALID_RECIPIENT, 'recipient');
      const mintKey = parseKey(mint, ErrorCode.VALIDATION_FAILED, 'asset.mint');
      if (typeof amount !== 'bigint' || amount <= 0n || amount >= 2n ** 64n) {
        throw FleetError.validation([{ path: 'amount', message: 'must be a positive 64-bit integer' }]);
      }
      const notAMint = () => FleetError.validation([{ path: 'asset.mint', message: 'not an SPL token mint' }]);
      const mintInfo = await rpc('getAccountInfo', () => connection.getAccountInfo(mintKey, commitment));
      const programId = mintInfo?.owner;
      if (!mintInfo || !programId || !(programId.equals(TOKEN_PROGRAM) || programId.equals(TOKEN_2022_PROGRAM))) throw notAMint();
      let decimals: number;
      try {
        decimals = unpackMint(mintKey, mintInfo, programId).decimals;
      } catch {
        throw notAMint();
      }
      let target: PublicKey;
      try {
        // A recipient off the curve (a program address) would need its program to sign for its tokens.
        target = getAssociatedTokenAddressSync(mintKey, toKey, false, programId);
      } catch {
        throw new FleetError(ErrorCode.INVALID_RECIPIENT, 'recipient cannot own an associated token account (not a wallet address)');
      }
      const source = getAssociatedTokenAddressSync(mintKey, fromKey, true, programId);
      const [{ blockhash, lastValidBlockHeight }, existing] = await Promise.all([
        rpc('getLatestBlockhash', () => connection.getLatestBlockhash(commitment)),
        rpc('getAccountInfo', () => connection.getAccountInfo(target, commitment)),
      ]);
      const tx = new Transaction({ feePayer: fromKey, blockhash, lastValidBlockHeight });
      if (!existing) tx.add(createAssociatedTokenAccountIdempotentInstruction(fromKey, target, toKey, mintKey, programId));
      tx.add(createTransferCheckedInstruction(source, mintKey, target, fromKey, amount, decimals, [], programId));
      return tx.serialize({ requireAllSignatures: false, verifySignatures: false });
    },

    async signTransaction(transaction, signer) {
      const parsed = parsedSolanaTransaction(transaction);
      // A copy to sign: the parsed transaction stays as it was read.
      const tx = new VersionedTransaction(parsed.transaction.message, [...parsed.transaction.signatures]);
      const signerKey = new PublicKey(signer.publicKey);
      const required = tx.message.header.numRequiredSignatures;
      const index = tx.message.staticAccountKeys.slice(0, required).findIndex((k) => k.equals(signerKey));
      if (index < 0) {
        throw new FleetError(ErrorCode.VALIDATION_FAILED, `${signerKey.toBase58()} is not a required signer of the transaction`);
      }
      const message = tx.message.serialize();
      const signature = await signVerifiedEd25519(signer, message);
      tx.signatures[index] = signature;
      return withSignature(parsed.bytes, tx, message, index);
    },

    async sendAndConfirm(signedTransaction, opts = {}) {
      const timeoutMs = opts.timeoutMs ?? 30_000;
      const pollMs = opts.pollMs ?? 400;
      const deadline = Date.now() + timeoutMs;
      const tx = parseTransaction(signedTransaction);
      const first = tx.signatures[0];
      if (!first || first.every((b) => b === 0)) {
        throw new FleetError(ErrorCode.VALIDATION_FAILED, 'the transaction is not signed by its fee payer');
      }
      const signature = bs58.encode(first);
      try {
        await connection.sendRawTransaction(signedTransaction, { skipPreflight: opts.skipPreflight ?? false, preflightCommitment: commitment, maxRetries: 0 });
      } catch (e) {
        // The same bytes sent again (after UNAVAILABLE or TIMEOUT) are refused as already
        // processed: that is the earlier attempt having landed, so its status is the answer.
        if (!(e instanceof SendTransactionError && /already been processed/i.test(e.transactionError.message))) throw sendFailure(e);
      }
      const wanted = wantedStatuses(commitment);
      for (;;) {
        try {
          const { value } = await connection.getSignatureStatuses([signature]);
          const status = value[0];
          if (status?.err) throw executionFailure(status.err, signature);
          if (status?.confirmationStatus && wanted.includes(status.confirmationStatus)) return signature;
        } catch (e) {
          if (e instanceof FleetError) throw e;
          // The transaction was accepted: an RPC hiccup while polling is not a failure of it.
        }
        if (Date.now() + pollMs > deadline) {
          throw new FleetError(ErrorCode.TIMEOUT, `transaction ${signature} not confirmed within ${timeoutMs} ms`, {
            retryable: false,
            details: { signature },
          });
        }
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },

    async fate(signedTransaction) {
      const tx = parseTransaction(signedTransaction);
      const first = tx.signatures[0];
      if (!first || first.every((b) => b === 0)) throw new FleetError(ErrorCode.VALIDATION_FAILED, 'the transaction is not signed by its fee payer');
      const signature = bs58.encode(first);
      const statusNow = () =>
        rpc('getSignatureStatuses', async () => (await connection.getSignatureStatuses([signature], { searchTransactionHistory: true })).value[0]);
      const judge = (status: NonNullable<Awaited<ReturnType<typeof statusNow>>>) =>
        status.err ? 'failed' : status.confirmationStatus && wantedStatuses(commitment).includes(status.confirmationStatus) ? 'confirmed' : 'pending';
      const status = await statusNow();
      if (status) return judge(status);
      const valid = await rpc('isBlockhashValid', async () => (await connection.isBlockhashValid(tx.message.recentBlockhash, { commitment })).value);
      if (valid) return 'pending';
      // Expired now, so nothing can land any more: a status seen now is final. Asked again because
      // the transaction may have landed between the first question and the expiry.
      const last = await statusNow();
      return last ? judge(last) : 'expired';
    },

    async nativeTransfers(signature, to) {
      if (typeof signature !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{64,90}$/.test(signature)) {
        throw FleetError.validation([{ path: 'signature', message: 'not a Solana signature' }]);
      }
      const toKey = parseKey(to, ErrorCode.VALIDATION_FAILED, 'to');
      const status = await rpc(
        'getSignatureStatuses',
        async () => (await connection.getSignatureStatuses([signature], { searchTransactionHistory: true })).value[0],
      );
      if (!status) return { status: 'not_found' };
      if (status.err) return { status: 'failed', reason: 'transaction failed on chain' };
      if (status.confirmationStatus === 'processed') return { status: 'pending', reason: 'not yet confirmed' };
      const tx = await rpc('getTransaction', () => connection.getTransaction(signature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 }));
      if (!tx?.meta) return { status: 'pending', reason: 'transaction detail not yet available' };
      const { meta } = tx;
      const keys = tx.transaction.message.getAccountKeys({ accountKeysFromLookups: meta.loadedAddresses ?? { writable: [], readonly: [] } });
      const transfers: NativeTransfer[] = [];
      for (let i = 0; i < keys.length; i++) {
        if (!keys.get(i)!.equals(toKey)) continue;
        const amount = BigInt(meta.postBalances[i] ?? 0) - BigInt(meta.preBalances[i] ?? 0);
        if (amount > 0n) transfers.push({ to: toKey.toBase58(), amount, position: { kind: 'solana-account', accountIndex: i } });
      }
      return {
        status: 'landed',
        block: BigInt(tx.slot),
        confirmations: status.confirmations === null || status.confirmations === undefined ? null : BigInt(status.confirmations),
        finality: status.confirmationStatus === 'finalized' ? 'finalized' : status.confirmationStatus === 'confirmed' ? 'confirmed' : null,
        transfers,
      };
    },

    async transfersOf(signature) {
      if (typeof signature !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{64,90}$/.test(signature)) {
        throw FleetError.validation([{ path: 'signature', message: 'not a Solana signature' }]);
      }
      const status = await rpc(
        'getSignatureStatuses',
        async () => (await connection.getSignatureStatuses([signature], { searchTransactionHistory: true })).value[0],
      );
      if (!status) return { status: 'not_found' };
      if (status.err) return { status: 'failed', reason: `transaction failed on chain: ${JSON.stringify(status.err).slice(0, 200)}` };
      if (status.confirmationStatus !== 'confirmed' && status.confirmationStatus !== 'finalized') return { status: 'pending', reason: 'not yet confirmed' };
      const tx = await rpc('getTransaction', () => connection.getTransaction(signature, { commitment: 'confirmed', maxSupportedTransactionVersion: 0 }));
      if (!tx?.meta) return { status: 'pending', reason: 'transaction detail not yet available' };
      if (tx.meta.err) return { status: 'failed', reason: `transaction failed on chain: ${JSON.stringify(tx.meta.err).slice(0, 200)}` };
      const final = status.confirmationStatus === 'finalized';
      return {
        status: 'landed',
        block: { number: BigInt(tx.slot) },
        finality: {
          final,
          confirmations: status.confirmations === null || status.confirmations === undefined ? null : BigInt(status.confirmations),
          commitment: status.confirmationStatus,
        },
        transfers: transfersInTransaction(tx),
      };
    },

    async requestAirdrop(address, lamports) {
      const key = parseKey(address, ErrorCode.VALIDATION_FAILED, 'address');
      if (typeof lamports !== 'bigint' || lamports <= 0n || lamports > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw FleetError.validation([{ path: 'lamports', message: `must be a positive integer up to ${Number.MAX_SAFE_INTEGER}` }]);
      }
      return rpc('requestAirdrop', () => connection.requestAirdrop(key, Number(lamports)));
    },
  };
}

function wantedStatuses(commitment: Commitment): string[] {
  return commitment === 'finalized' ? ['finalized'] : commitment === 'confirmed' ? ['confirmed', 'finalized'] : ['processed', 'confirmed', 'finalized'];
}

/** The fee payer's base58 signature of a signed transaction: its id on chain. Throws VALIDATION_FAILED. */
export function transactionSignature(signedTransaction: Uint8Array): string {
  const first = parseTransaction(signedTransaction).signatures[0];
  if (!first || first.every((b) => b === 0)) throw new FleetError(ErrorCode.VALIDATION_FAILED, 'the transaction is not signed by its fee payer');
  return bs58.encode(first);
}

function parseKey(s: string, code: ErrorCode, what: string): PublicKey {
  try {
    if (typeof s !== 'string' || s.length < 32 || s.length > 44) throw new Error('length');
    return new PublicKey(s);
  } catch {
    if (code === ErrorCode.VALIDATION_FAILED) throw FleetError.validation([{ path: what, message: 'not a Solana address' }]);
    throw new FleetError(code, `${what} is not a Solana address`);
  }
}

/**
 * `tx.serialize()` once signature `index` of `tx` is set, where `original` holds the bytes `tx` was
 * read from and `message` its serialized message. When `original` is already in canonical form (a
 * one-byte signature count, the signatures, then exactly `message`), that is `original` with the
 * new signature in place: taken so, without serializing the message a second time inside web3.js
 * (its largest CPU cost on the signing path). Any other input is serialized by web3.js.
 */
function withSignature(original: Uint8Array, tx: VersionedTransaction, message: Uint8Array, index: number): Uint8Array {
  const count = tx.signatures.length;
  const messageStart = 1 + SIGNATURE_BYTES * count;
  const canonical =
    count < 0x80 &&
    original[0] === count &&
    original.length === messageStart + message.length &&
    Buffer.from(original.buffer, original.byteOffset + messageStart, message.length).equals(message);
  if (!canonical) return tx.serialize();
  const signed = Uint8Array.from(original);
  signed.set(tx.signatures[index]!, 1 + SIGNATURE_BYTES * index);
  return signed;
}

function parseTransaction(bytes: Uint8Array): VersionedTransaction {
  return parseSolanaTransaction(bytes).transaction;
}

function rpcFailure(what: string, e: unknown): FleetError {
  if (e instanceof FleetError) return e;
  const message = e instanceof Error ? e.message : String(e);
  // Method not found: an RPC provider that does not serve this method (some do not serve history).
  if ((e as { code?: unknown })?.code === -32601) return new FleetError(ErrorCode.UNAVAILABLE, `the Solana node does not serve ${what}`, { cause: e });
  if (/invalid param|Invalid param/.test(message)) return new FleetError(ErrorCode.VALIDATION_FAILED, `${what}: ${message}`, { cause: e });
  return new FleetError(ErrorCode.UNAVAILABLE, `Solana RPC ${what} failed: ${message}`, { cause: e });
}

/**
 * Maps a refused submission. web3.js keeps only the RPC's message and logs (not the structured
 * error), so this reads the validator's own wording of TransactionError and the system program's
 * log lines, which are stable across versions.
 */
function sendFailure(e: unknown): FleetError {
  if (!(e instanceof SendTransactionError)) return rpcFailure('sendTransaction', e);
  const message = e.transactionError.message;
  const logs = (e.logs ?? []).join('\n');
  if (/insufficient lamports/i.test(logs) || /insufficient funds for fee|no record of a prior credit/i.test(message)) {
    return new FleetError(ErrorCode.INSUFFICIENT_FUNDS, message, { cause: e });
  }
  const rent = /account \((\d+)\) with insufficient funds for rent/i.exec(message);
  if (rent) {
    return rent[1] === '0'
      ? new FleetError(ErrorCode.INSUFFICIENT_FUNDS, `the payer would be left below rent exemption: ${message}`, { cause: e })
      : new FleetError(ErrorCode.INVALID_RECIPIENT, `the recipient would hold less than the rent-exempt minimum: ${message}`, { cause: e });
  }
  if (/signature verification|did not pass signature/i.test(message)) {
    return new FleetError(ErrorCode.SIGNING_FAILED, message, { cause: e });
  }
  if (/blockhash not found/i.test(message)) {
    return new FleetError(ErrorCode.SUBMISSION_FAILED, `the blockhash expired, build the transaction again: ${message}`, { retryable: true, cause: e });
  }
  return new FleetError(ErrorCode.SUBMISSION_FAILED, message, { cause: e, details: { logs: e.logs?.slice(-5) ?? [] } });
}

function executionFailure(err: TransactionError, signature: string): FleetError {
  const text = JSON.stringify(err);
  const details = { signature, err: text.slice(0, 200) };
  if (err === 'InsufficientFundsForFee' || err === 'AccountNotFound') {
    return new FleetError(ErrorCode.INSUFFICIENT_FUNDS, `transaction failed: ${text}`, { details });
  }
  if (typeof err === 'object' && err !== null) {
    const o = err as Record<string, unknown>;
    // System program error 1 is ResultWithNegativeLamports (a transfer larger than the balance).
    const ie = o.InstructionError as [number, unknown] | undefined;
    if (ie && (ie[1] as { Custom?: number })?.Custom === 1) {
      return new FleetError(ErrorCode.INSUFFICIENT_FUNDS, `transaction failed: ${text}`, { details });
    }
    const rent = o.InsufficientFundsForRent as { account_index?: number } | undefined;
    if (rent) {
      return new FleetError(rent.account_index === 0 ? ErrorCode.INSUFFICIENT_FUNDS : ErrorCode.INVALID_RECIPIENT, `transaction failed: ${text}`, { details });
    }
  }
  return new FleetError(ErrorCode.SUBMISSION_FAILED, `transaction failed: ${text}`, { details });
}
