import { VersionedTransaction } from '@solana/web3.js';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';

/**
 * A serialized Solana transaction (legacy or v0) read once, with the bytes it was read from: what
 * `decodeSolanaTransaction` and the adapter's `signTransaction` both take, so that a signing that
 * decodes and then signs reads the bytes once (web3.js's reading costs about as much as either's
 * own work). Neither changes it.
 */
export interface ParsedSolanaTransaction {
  readonly bytes: Uint8Array;
  readonly transaction: VersionedTransaction;
}

/** Reads `bytes` as a Solana transaction. Throws VALIDATION_FAILED (not a Solana transaction). */
export function parseSolanaTransaction(bytes: Uint8Array): ParsedSolanaTransaction {
  try {
    return { bytes, transaction: VersionedTransaction.deserialize(bytes) };
  } catch (e) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a serialized Solana transaction', { cause: e });
  }
}

/** `input` read, unless it was already. Throws VALIDATION_FAILED. */
export const parsedSolanaTransaction = (input: Uint8Array | ParsedSolanaTransaction): ParsedSolanaTransaction =>
  input instanceof Uint8Array ? parseSolanaTransaction(input) : input;
