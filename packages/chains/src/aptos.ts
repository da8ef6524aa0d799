import { sha3_256 } from '@noble/hashes/sha3.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { Deserializer, Ed25519PublicKey, Ed25519Signature, RawTransaction, SignedTransaction, TransactionAuthenticatorEd25519 } from '@aptos-labs/ts-sdk';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { aptosAddress, isValidAddress } from './addresses.js';
import { type Ed25519Signer, signVerifiedEd25519 } from './signers.js';

// Domain separator of a single-signer RawTransaction's signing message.
const RAW_TRANSACTION_PREFIX = sha3_256(new TextEncoder().encode('APTOS::RawTransaction'));

/**
 * Signs a BCS-serialized Aptos RawTransaction (single signer; not fee-payer or multi-agent) with
 * an Ed25519 signer and returns the BCS SignedTransaction (Ed25519 authenticator), ready for
 * POST /transactions with `application/x.aptos.signed_transaction+bcs`.
 * Signing message = sha3-256("APTOS::RawTransaction") || bcs(raw transaction).
 * Throws VALIDATION_FAILED (not a raw transaction, or its sender is not the signer's address) and
 * SIGNING_FAILED (the signer failed or returned a signature that does not verify).
 */
export async function signAptosRawTransaction(rawTransaction: Uint8Array, signer: Ed25519Signer): Promise<Uint8Array> {
  let raw: RawTransaction;
  try {
    const d = new Deserializer(rawTransaction);
    raw = RawTransaction.deserialize(d);
    if (d.remaining() !== 0) throw new Error('trailing bytes');
  } catch (e) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a BCS Aptos raw transaction', { cause: e });
  }
  const expected = aptosAddress(signer.publicKey);
  if (raw.sender.toStringLong() !== expected) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, `the transaction's sender ${raw.sender.toStringLong()} is not the signer ${expected}`);
  }
  // Sign the canonical re-serialization, so the signature covers exactly what we send.
  const body = raw.bcsToBytes();
  const message = new Uint8Array(RAW_TRANSACTION_PREFIX.length + body.length);
  message.set(RAW_TRANSACTION_PREFIX, 0);
  message.set(body, RAW_TRANSACTION_PREFIX.length);
  const signature = await signVerifiedEd25519(signer, message);
  const authenticator = new TransactionAuthenticatorEd25519(new Ed25519PublicKey(signer.publicKey), new Ed25519Signature(signature));
  return new SignedTransaction(raw, authenticator).bcsToBytes();
}

export interface AptosAdapterOptions {
  /** The node's REST API, e.g. `https://fullnode.mainnet.aptoslabs.com/v1`. */
  nodeUrl: string;
  /** Deadline of one request; default 5 s. */
  requestTimeoutMs?: number;
}

export interface AptosAdapter {
  /**
   * Octas held by `address` (APT, the fungible-asset balance the node reports at
   * `/accounts/{address}/balance/0x1::aptos_coin::AptosCoin`); 0 for an account the node does not
   * know (404). Throws VALIDATION_FAILED (not an Aptos address), UNAVAILABLE (node unreachable, slow,
   * or answering an error or something that is not a balance).
   */
  getBalance(address: string): Promise<bigint>;
}

/** An Aptos adapter over the node's REST API (no SDK client: one GET per read). */
export function createAptosAdapter(options: AptosAdapterOptions): AptosAdapter {
  const base = options.nodeUrl.replace(/\/$/, '');
  const timeoutMs = options.requestTimeoutMs ?? 5000;
  return {
    async getBalance(address) {
      if (!isValidAddress('APTOS', address)) throw FleetError.validation([{ path: 'address', message: 'not an Aptos address' }]);
      let res: Response;
      try {
        res = await fetch(`${base}/accounts/${address}/balance/0x1::aptos_coin::AptosCoin`, { signal: AbortSignal.timeout(timeoutMs) });
      } catch (e) {
        throw new FleetError(ErrorCode.UNAVAILABLE, 'aptos node unreachable', { cause: e });
      }
      if (res.status === 404) {
        await res.body?.cancel();
        return 0n;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new FleetError(ErrorCode.UNAVAILABLE, `aptos node answered ${res.status}`);
      }
      // The u64 comes as a bare JSON number (or a string): read as text, since JSON.parse would
      // round a balance above 2^53.
      let text: string;
      try {
        text = (await res.text()).trim();
      } catch (e) {
        throw new FleetError(ErrorCode.UNAVAILABLE, 'aptos node unreachable', { cause: e });
      }
      const digits = /^"?(\d{1,20})"?$/.exec(text)?.[1];
      if (digits === undefined) throw new FleetError(ErrorCode.UNAVAILABLE, 'aptos node answered something that is not a balance');
      return BigInt(digits);
    },
  };
}
