import { type KeyObject, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { crc32c } from '@aws-crypto/crc32c';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { secp256k1 } from '@noble/curves/secp256k1';
import { keccak_256 } from '@noble/hashes/sha3';
import { LRUCache } from 'lru-cache';

export type KeyAlgorithm = 'ed25519' | 'secp256k1';

/** An ECDSA signature over secp256k1 with s in the lower half of the order (EIP-2). */
export interface EcdsaSignature {
  r: bigint;
  s: bigint;
}

/** An Ethereum signature: low-s `r`, `s` and the recovery bit (`yParity`, `v = 27 + yParity` in legacy form). */
export interface EthSignature extends EcdsaSignature {
  yParity: 0 | 1;
}

export function crc32cOf(data: Uint8Array | string): number {
  return crc32c(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
}

export function signingFailed(message: string, retryable = false, cause?: unknown): FleetError {
  return new FleetError(ErrorCode.SIGNING_FAILED, message, { retryable, ...(cause === undefined ? {} : { cause }) });
}

/**
 * The raw public key inside a KMS PEM (SubjectPublicKeyInfo): Ed25519 → 32 bytes, secp256k1 → 65
 * bytes uncompressed. node:crypto parses the DER, so a PEM of another curve cannot pass for ours.
 * @throws FleetError `SIGNING_FAILED` when the PEM does not hold a key of `algorithm`.
 */
export function rawPublicKeyFromPem(pem: string, algorithm: KeyAlgorithm): Uint8Array {
  let jwk: { kty?: string; crv?: string; x?: string; y?: string };
  try {
    jwk = createPublicKey(pem).export({ format: 'jwk' });
  } catch (err) {
    throw signingFailed('KMS returned a public key that does not parse', false, err);
  }
  if (algorithm === 'ed25519' && jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && jwk.x) {
    const raw = Buffer.from(jwk.x, 'base64url');
    if (raw.length === 32) return new Uint8Array(raw);
  }
  if (algorithm === 'secp256k1' && jwk.kty === 'EC' && jwk.crv === 'secp256k1' && jwk.x && jwk.y) {
    const raw = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
    if (raw.length === 65) return new Uint8Array(raw);
  }
  throw signingFailed(`KMS returned a public key that is not ${algorithm}`);
}

/**
 * OpenSSL key objects of Ed25519 public keys, by the key's base64url (its JWK `x`), least recently
 * used dropped first. Building one from a JWK is a parse and an allocation per verification; a
 * process verifies the signatures of a working set of keys over and over.
 */
const ed25519KeyObjects = new LRUCache<string, KeyObject>({ max: 10_000 });

function ed25519KeyObject(publicKey: Uint8Array): KeyObject {
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64url');
  let key = ed25519KeyObjects.get(x);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    ed25519KeyObjects.set(x, key);
  }
  return key;
}

/**
 * Verifies an Ed25519 signature (pure EdDSA over the message) with OpenSSL through node:crypto:
 * about 30 times cheaper than a JavaScript verification on the signing path, and strict RFC 8032
 * (it accepts no signature that a lenient ZIP-215 verifier would refuse).
 */
export function verifyEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    return nodeVerify(null, message, ed25519KeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/**
 * A DER ECDSA signature (as Cloud KMS returns it) as `{ r, s }` with s normalised to low-s (EIP-2):
 * KMS leaves s as it falls, and Ethereum rejects high-s transactions.
 * @throws FleetError `SIGNING_FAILED` when the DER does not parse.
 */
export function parseDerSignature(der: Uint8Array): EcdsaSignature {
  let sig;
  try {
    sig = secp256k1.Signature.fromDER(der);
  } catch (err) {
    throw signingFailed('KMS returned a signature that is not valid DER', false, err);
  }
  const low = sig.normalizeS();
  return { r: low.r, s: low.s };
}

/** Whether `{ r, s }` is a low-s secp256k1 signature of the 32-byte `digest` (taken as is, not hashed) by `publicKey`. */
export function verifySecp256k1Digest(sig: EcdsaSignature, digest: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return secp256k1.verify(new secp256k1.Signature(sig.r, sig.s).toCompactRawBytes(), digest, publicKey, { prehash: false, lowS: true });
  } catch {
    return false;
  }
}

/** The lower-case `0x…` Ethereum address of a secp256k1 public key (keccak-256 of the uncompressed key without its 0x04 prefix, last 20 bytes). */
export function ethereumAddressOf(publicKey: Uint8Array): string {
  const uncompressed = secp256k1.ProjectivePoint.fromHex(publicKey).toRawBytes(false);
  return `0x${Buffer.from(keccak_256(uncompressed.subarray(1)).subarray(12)).toString('hex')}`;
}

/**
 * `sig` as an Ethereum signature: s normalised to low-s (EIP-2) if it was not, and the recovery bit,
 * the one of 0 and 1 whose recovered key is `publicKey` (33 or 65 bytes). KMS does not return it,
 * so it is found by trying both.
 * @throws FleetError `SIGNING_FAILED` when neither recovers `publicKey` (wrong key or digest).
 */
export function toEthSignature(sig: EcdsaSignature, digest32: Uint8Array, publicKey: Uint8Array): EthSignature {
  const n = secp256k1.CURVE.n;
  // (r, n - s) is the same signature for the other point parity: normalising before the search
  // keeps the found bit consistent with the s we return.
  if (sig.s > n >> 1n) sig = { r: sig.r, s: n - sig.s };
  let expected;
  try {
    expected = secp256k1.ProjectivePoint.fromHex(publicKey);
  } catch (err) {
    throw signingFailed('not a secp256k1 public key', false, err);
  }
  for (const yParity of [0, 1] as const) {
    try {
      const recovered = new secp256k1.Signature(sig.r, sig.s).addRecoveryBit(yParity).recoverPublicKey(digest32);
      if (recovered.equals(expected)) return { r: sig.r, s: sig.s, yParity };
    } catch {
      // This bit does not recover any point; try the other.
    }
  }
  throw signingFailed('no recovery id yields the expected public key');
}
