import { sha3_256, keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import bs58 from 'bs58';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';

/** Chains we derive addresses for (the contracts' `chain` values). */
export type Chain = 'SOL' | 'ETH' | 'APTOS';

/**
 * Solana address: the base58 of the 32-byte Ed25519 public key.
 * @throws FleetError VALIDATION_FAILED when the key is not 32 bytes.
 */
export function solanaAddress(publicKey: Uint8Array): string {
  expectLength(publicKey, 32, 'Ed25519 public key');
  return bs58.encode(publicKey);
}

/**
 * Ethereum address: EIP-55 checksum of the last 20 bytes of keccak-256(x || y).
 * @throws FleetError VALIDATION_FAILED when the key is not 65 bytes starting with 0x04.
 */
export function ethereumAddress(publicKey: Uint8Array): string {
  expectLength(publicKey, 65, 'uncompressed secp256k1 public key');
  if (publicKey[0] !== 0x04) throw invalid('uncompressed secp256k1 public key must start with 0x04');
  return toChecksumAddress(bytesToHex(keccak_256(publicKey.subarray(1)).subarray(12)));
}

/**
 * Aptos address of a single-Ed25519-key account: 0x + hex(sha3-256(pubkey || 0x00)), the 0x00
 * being the Ed25519 authentication scheme. Always the full 64 hex digits (the SDK's long form).
 * @throws FleetError VALIDATION_FAILED when the key is not 32 bytes.
 */
export function aptosAddress(publicKey: Uint8Array): string {
  expectLength(publicKey, 32, 'Ed25519 public key');
  const buf = new Uint8Array(33);
  buf.set(publicKey, 0);
  buf[32] = 0x00;
  return `0x${bytesToHex(sha3_256(buf))}`;
}

/**
 * Whether `s` is a well-formed address on `chain`. Solana: base58 of 32 bytes (on or off the
 * curve: program-derived addresses are valid recipients). Ethereum: 0x + 40 hex, and when mixed
 * case, a correct EIP-55 checksum. Aptos: 0x + 1..64 hex digits.
 */
export function isValidAddress(chain: Chain, s: string): boolean {
  if (typeof s !== 'string') return false;
  switch (chain) {
    case 'SOL': {
      if (s.length < 32 || s.length > 44) return false;
      try {
        return bs58.decode(s).length === 32;
      } catch {
        return false;
      }
    }
    case 'ETH': {
      if (!/^0x[0-9a-fA-F]{40}$/.test(s)) return false;
      const body = s.slice(2);
      if (body === body.toLowerCase() || body === body.toUpperCase()) return true;
      return toChecksumAddress(body.toLowerCase()) === s;
    }
    case 'APTOS':
      return /^0x[0-9a-fA-F]{1,64}$/.test(s);
    default:
      return false;
  }
}

function toChecksumAddress(lowerHex: string): string {
  const hash = bytesToHex(keccak_256(new TextEncoder().encode(lowerHex)));
  let out = '0x';
  for (let i = 0; i < lowerHex.length; i++) {
    const c = lowerHex[i]!;
    out += parseInt(hash[i]!, 16) >= 8 ? c.toUpperCase() : c;
  }
  return out;
}

function expectLength(b: Uint8Array, n: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== n) throw invalid(`${what} must be ${n} bytes`);
}

function invalid(message: string): FleetError {
  return new FleetError(ErrorCode.VALIDATION_FAILED, message);
}
