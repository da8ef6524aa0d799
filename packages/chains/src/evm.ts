import { secp256k1 } from '@noble/curves/secp256k1.js';
import {
  createPublicClient,
  http,
  keccak256,
  numberToHex,
  parseTransaction,
  serializeTransaction,
  getAddress,
  BaseError,
  type Hex,
  type TransactionSerializable,
} from 'viem';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { ethereumAddress } from './addresses.js';
import type { Secp256k1Signer } from './signers.js';
import type { TransactionTransfers } from './transfers.js';

const HALF_N = secp256k1.CURVE.n >> 1n;

export interface EvmAdapter {
  /** Wei held by `address`. Throws VALIDATION_FAILED, UNAVAILABLE. */
  getBalance(address: string): Promise<bigint>;
  /** The node's chain id. Throws UNAVAILABLE. */
  getChainId(): Promise<number>;
  /** Next nonce of `address` (pending block). Throws VALIDATION_FAILED, UNAVAILABLE. */
  getTransactionCount(address: string): Promise<number>;
  /**
   * Broadcasts a signed raw transaction and waits for its receipt; returns the hash and whether it
   * succeeded. Throws INSUFFICIENT_FUNDS, SUBMISSION_FAILED (rejected by the node or reverted),
   * UNAVAILABLE, TIMEOUT (sent, no receipt in `timeoutMs`: `details.hash` may still be mined).
   */
  sendRawTransaction(signedTransaction: Hex, options?: { timeoutMs?: number; pollMs?: number }): Promise<{ hash: Hex; blockNumber: bigint }>;
  /**
   * What the transaction `hash` paid to `to` in wei (its own value; see TransactionTransfers), with
   * its confirmations against the latest block. Throws VALIDATION_FAILED (not a transaction hash or
   * not an address), UNAVAILABLE (RPC down or failing).
   */
  nativeTransfers(hash: string, to: string): Promise<TransactionTransfers>;
}

/** An EVM JSON-RPC adapter over HTTP (viem). */
export function createEvmAdapter(options: { rpcUrl: string; requestTimeoutMs?: number }): EvmAdapter {
  const client = createPublicClient({ transport: http(options.rpcUrl, { timeout: options.requestTimeoutMs ?? 10_000, retryCount: 0 }) });
  const rpc = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (e) {
      throw evmFailure(what, e);
    }
  };
  return {
    getBalance: (address) => rpc('getBalance', () => client.getBalance({ address: parseAddress(address) })),
    getChainId: () => rpc('getChainId', () => client.getChainId()),
    getTransactionCount: (address) => rpc('getTransactionCount', () => client.getTransactionCount({ address: parseAddress(address), blockTag: 'pending' })),
    async sendRawTransaction(signedTransaction, opts = {}) {
      const hash = await rpc('sendRawTransaction', () => client.sendRawTransaction({ serializedTransaction: signedTransaction }));
      let receipt;
      try {
        receipt = await client.waitForTransactionReceipt({ hash, timeout: opts.timeoutMs ?? 60_000, pollingInterval: opts.pollMs ?? 500, retryCount: 0 });
      } catch (e) {
        throw new FleetError(ErrorCode.TIMEOUT, `no receipt for ${hash}`, { retryable: false, details: { hash }, cause: e });
      }
      if (receipt.status !== 'success') {
        throw new FleetError(ErrorCode.SUBMISSION_FAILED, `transaction ${hash} reverted`, { details: { hash } });
      }
      return { hash, blockNumber: receipt.blockNumber };
    },
    async nativeTransfers(hash, to) {
      if (typeof hash !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(hash))
        throw FleetError.validation([{ path: 'hash', message: 'not an EVM transaction hash' }]);
      const address = parseAddress(to);
      const h = hash as Hex;
      // viem reports an unknown transaction (or a missing receipt) as an error: that is an answer, not a failure.
      const found = async <T>(what: string, call: () => Promise<T>, notFound: string): Promise<T | undefined> => {
        try {
          return await call();
        } catch (e) {
          if (e instanceof BaseError && e.walk((x) => (x as { name?: string })?.name === notFound)) return undefined;
          throw evmFailure(what, e);
        }
      };
      const tx = await found('getTransaction', () => client.getTransaction({ hash: h }), 'TransactionNotFoundError');
      if (!tx) return { status: 'not_found' };
      const receipt = await found('getTransactionReceipt', () => client.getTransactionReceipt({ hash: h }), 'TransactionReceiptNotFoundError');
      if (!receipt) return { status: 'pending', reason: 'not yet mined' };
      if (receipt.status !== 'success') return { status: 'failed', reason: 'transaction reverted' };
      const head = await rpc('getBlockNumber', () => client.getBlockNumber({ cacheTime: 0 }));
      const paid = tx.to !== null && tx.to !== undefined && tx.to.toLowerCase() === address.toLowerCase() && tx.value > 0n;
      return {
        status: 'landed',
        block: receipt.blockNumber,
        confirmations: head - receipt.blockNumber + 1n,
        finality: null,
        transfers: paid ? [{ to: address, amount: tx.value, position: { kind: 'evm-value' } }] : [],
      };
    },
  };
}

function parseAddress(address: string): Hex {
  try {
    return getAddress(address);
  } catch {
    throw FleetError.validation([{ path: 'address', message: 'not an Ethereum address' }]);
  }
}

function evmFailure(what: string, e: unknown): FleetError {
  if (e instanceof FleetError) return e;
  const text = e instanceof BaseError ? `${e.shortMessage} ${e.details ?? ''}` : e instanceof Error ? e.message : String(e);
  if (/insufficient funds/i.test(text)) return new FleetError(ErrorCode.INSUFFICIENT_FUNDS, text, { cause: e });
  const isHttp = e instanceof BaseError && e.walk((x) => x?.constructor?.name === 'HttpRequestError' || x?.constructor?.name === 'TimeoutError') !== null;
  if (isHttp || /fetch failed|ECONNREFUSED|timed out/i.test(text)) {
    return new FleetError(ErrorCode.UNAVAILABLE, `EVM RPC ${what} failed: ${text}`, { cause: e });
  }
  if (what === 'sendRawTransaction') return new FleetError(ErrorCode.SUBMISSION_FAILED, text, { cause: e });
  return new FleetError(ErrorCode.UNAVAILABLE, `EVM RPC ${what} failed: ${text}`, { cause: e });
}

/**
 * Signs an unsigned serialized EVM transaction (legacy with or without EIP-155 chain id, EIP-2930
 * or EIP-1559) with a secp256k1 signer: keccak-256 of the unsigned serialization, the signer's
 * low-s (r, s), and the recovery id found by trying both parities against the signer's address.
 * An unsigned transaction names no sender: the sender is whoever signs, so there is nothing to
 * compare against; the caller decides which wallet signs (and must set the nonce for it).
 * Throws VALIDATION_FAILED (not an unsigned transaction of a supported type) and SIGNING_FAILED
 * (the signer failed, returned high-s, or a signature that recovers to no address of the signer).
 */
export async function signEvmTransaction(unsignedSerializedHex: string, signer: Secp256k1Signer): Promise<{ signedTransaction: Hex; hash: Hex; from: string }> {
  let tx: TransactionSerializable & { r?: unknown; s?: unknown; v?: unknown; yParity?: unknown };
  try {
    if (!/^0x[0-9a-fA-F]+$/.test(unsignedSerializedHex)) throw new Error('not hex');
    tx = parseTransaction(unsignedSerializedHex as Hex) as typeof tx;
  } catch (e) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a serialized EVM transaction', { cause: e });
  }
  if (tx.r !== undefined || tx.s !== undefined) throw new FleetError(ErrorCode.VALIDATION_FAILED, 'the transaction is already signed');
  if (tx.type !== 'legacy' && tx.type !== 'eip2930' && tx.type !== 'eip1559') {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, `transaction type ${String(tx.type)} is not supported`);
  }
  const from = ethereumAddress(signer.publicKey);
  const digest = keccak256(serializeTransaction(tx), 'bytes');
  let sig: { r: bigint; s: bigint };
  try {
    sig = await signer.signDigest(digest);
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw new FleetError(ErrorCode.SIGNING_FAILED, 'the signer failed', { cause: e });
  }
  // Nodes reject high-s (EIP-2); the signer promises low-s, and a broken promise here would
  // otherwise surface as a misleading "insufficient funds" for the wrong recovered sender.
  if (sig.s <= 0n || sig.s > HALF_N || sig.r <= 0n || sig.r >= secp256k1.CURVE.n) {
    throw new FleetError(ErrorCode.SIGNING_FAILED, 'the signer returned a signature out of range or with high s');
  }
  const yParity = recoveryBit(sig, digest, from);
  if (yParity === undefined) throw new FleetError(ErrorCode.SIGNING_FAILED, "the signature does not recover to the signer's address");
  const signature = { r: numberToHex(sig.r, { size: 32 }), s: numberToHex(sig.s, { size: 32 }), yParity, v: BigInt(27 + yParity) };
  const signedTransaction = serializeTransaction(tx, signature);
  return { signedTransaction, hash: keccak256(signedTransaction), from };
}

function recoveryBit(sig: { r: bigint; s: bigint }, digest: Uint8Array, address: string): 0 | 1 | undefined {
  for (const bit of [0, 1] as const) {
    try {
      const pub = new secp256k1.Signature(sig.r, sig.s).addRecoveryBit(bit).recoverPublicKey(digest).toRawBytes(false);
      if (ethereumAddress(pub) === address) return bit;
    } catch {
      // this parity has no point on the curve
    }
  }
  return undefined;
}
