import { crc32c } from '@aws-crypto/crc32c';
import { ed25519 } from '@noble/curves/ed25519';
import { p256 } from '@noble/curves/nist';
import { secp256k1 } from '@noble/curves/secp256k1';
import { sha256 } from '@noble/hashes/sha2';

/** The asymmetric signing algorithms the emulator implements (names as in the proto). */
export const SUPPORTED_ALGORITHMS = ['EC_SIGN_ED25519', 'EC_SIGN_SECP256K1_SHA256', 'EC_SIGN_P256_SHA256'] as const;
export type Algorithm = (typeof SUPPORTED_ALGORITHMS)[number];

export function isSupportedAlgorithm(a: unknown): a is Algorithm {
  return (SUPPORTED_ALGORITHMS as readonly unknown[]).includes(a);
}

// DER SubjectPublicKeyInfo prefixes: what precedes the raw key in the PEM the real service returns.
const SPKI_PREFIX: Record<Algorithm, string> = {
  // SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (32 bytes) }
  EC_SIGN_ED25519: '302a300506032b6570032100',
  // SEQUENCE { SEQUENCE { OID ecPublicKey, OID secp256k1 } BIT STRING (65 bytes, uncompressed) }
  EC_SIGN_SECP256K1_SHA256: '3056301006072a8648ce3d020106052b8104000a034200',
  // SEQUENCE { SEQUENCE { OID ecPublicKey, OID prime256v1 } BIT STRING (65 bytes, uncompressed) }
  EC_SIGN_P256_SHA256: '3059301306072a8648ce3d020106082a8648ce3d030107034200',
};

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function generateKeyPair(algorithm: Algorithm): KeyPair {
  switch (algorithm) {
    case 'EC_SIGN_ED25519': {
      const privateKey = ed25519.utils.randomPrivateKey();
      return { privateKey, publicKey: ed25519.getPublicKey(privateKey) };
    }
    case 'EC_SIGN_SECP256K1_SHA256': {
      const privateKey = secp256k1.utils.randomPrivateKey();
      return { privateKey, publicKey: secp256k1.getPublicKey(privateKey, false) };
    }
    case 'EC_SIGN_P256_SHA256': {
      const privateKey = p256.utils.randomPrivateKey();
      return { privateKey, publicKey: p256.getPublicKey(privateKey, false) };
    }
  }
}

export function publicKeyPem(algorithm: Algorithm, publicKey: Uint8Array): string {
  const der = Buffer.concat([Buffer.from(SPKI_PREFIX[algorithm], 'hex'), publicKey]);
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`;
}

/** Ed25519: pure EdDSA over the message. */
export function signEd25519(privateKey: Uint8Array, data: Uint8Array): Uint8Array {
  return ed25519.sign(data, privateKey);
}

/**
 * ECDSA over a precomputed 32-byte digest, DER-encoded like the real service. The digest is signed
 * as given (never hashed again), and s is left as it falls (no low-s normalisation): the real
 * service returns high-s signatures about half the time and clients must cope.
 */
export function signEcdsaDigest(algorithm: 'EC_SIGN_SECP256K1_SHA256' | 'EC_SIGN_P256_SHA256', privateKey: Uint8Array, digest: Uint8Array): Uint8Array {
  const curve = algorithm === 'EC_SIGN_SECP256K1_SHA256' ? secp256k1 : p256;
  return curve.sign(digest, privateKey, { lowS: false }).toDERRawBytes();
}

export function sha256Digest(data: Uint8Array): Uint8Array {
  return sha256(data);
}

export function crc32cOf(data: Uint8Array | string): number {
  return crc32c(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
}
