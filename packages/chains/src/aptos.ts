import { sha3_256 } from '@noble/hashes/sha3.js';
import {
  Deserializer,
  Ed25519PublicKey,
  Ed25519Signature,
  RawTransaction,
  SignedTransaction,
  TransactionAuthenticatorEd25519,
} from '@aptos-labs/ts-sdk';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { aptosAddress } from './addresses.js';
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
