import { createPublicKey, verify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';

/**
 * Signs raw message bytes with pure Ed25519 (Solana, Aptos). The custody package's KMS signer
 * implements this; `localEd25519Signer()` does it in memory for tests.
 */
export interface Ed25519Signer {
  /** 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Returns the 64-byte signature over `message` (not a digest: Ed25519 hashes internally). */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /**
   * Set by a signer whose `sign` verifies every signature against `publicKey` itself before
   * returning it (the KMS custody given the wallet's key does): `signVerifiedEd25519` then does not
   * verify it a second time, which would cost as much CPU again (about 0.1 ms).
   */
  readonly verifiesAgainstPublicKey?: true;
}

/**
 * Signs a 32-byte digest with secp256k1 ECDSA (Ethereum: the keccak-256 of the unsigned tx).
 * The signer returns a low-s signature (EIP-2); the recovery id is found by the caller against the
 * address of `publicKey`, because KMS does not return one.
 */
export interface Secp256k1Signer {
  /** 65-byte uncompressed public key (0x04 || x || y). */
  readonly publicKey: Uint8Array;
  signDigest(digest: Uint8Array): Promise<{ r: bigint; s: bigint; yParity?: 0 | 1 }>;
  /**
   * Set by a signer whose `signDigest` returns `yParity`, found by recovering from the signature the
   * key of `publicKey`'s address (the KMS custody's `signEthereumDigest` given that address does):
   * that recovery verified the signature, so `signEvmTransaction` takes the bit as given instead of
   * recovering again (each recovery costs about 1.7 ms of CPU in JavaScript).
   */
  readonly verifiesAgainstPublicKey?: true;
}

/** An in-memory Ed25519 signer (tests and development only: the key lives in process memory). */
export function localEd25519Signer(secretKey: Uint8Array = ed25519.utils.randomPrivateKey()): Ed25519Signer {
  const secret = Uint8Array.from(secretKey);
  const publicKey = ed25519.getPublicKey(secret);
  return {
    publicKey,
    sign: async (message) => ed25519.sign(message, secret),
  };
}

/** An in-memory secp256k1 signer (tests and development only) that returns low-s signatures. */
export function localSecp256k1Signer(secretKey: Uint8Array = secp256k1.utils.randomPrivateKey()): Secp256k1Signer {
  const secret = Uint8Array.from(secretKey);
  const publicKey = secp256k1.getPublicKey(secret, false);
  return {
    publicKey,
    signDigest: async (digest) => {
      const sig = secp256k1.sign(digest, secret, { lowS: true, prehash: false });
      return { r: sig.r, s: sig.s };
    },
  };
}

/**
 * Asks `signer` for an Ed25519 signature of `message` and verifies it against the signer's public
 * key before returning it (unless the signer did: `verifiesAgainstPublicKey`): a signature that does
 * not verify would be refused by the chain with a confusing error, or be the sign of a wrong key.
 * @throws FleetError SIGNING_FAILED (the signer failed, or its signature does not verify); a
 *   FleetError of the signer (e.g. UNAVAILABLE from KMS) passes through.
 */
export async function signVerifiedEd25519(signer: Ed25519Signer, message: Uint8Array): Promise<Uint8Array> {
  let signature: Uint8Array;
  try {
    signature = await signer.sign(message);
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw new FleetError(ErrorCode.SIGNING_FAILED, 'the signer failed', { cause: e });
  }
  if (signature.length !== 64 || (signer.verifiesAgainstPublicKey !== true && !verifiesEd25519(signature, message, signer.publicKey))) {
    throw new FleetError(ErrorCode.SIGNING_FAILED, 'the signer returned a signature that does not verify');
  }
  return signature;
}

// OpenSSL's Ed25519 (strict RFC 8032) through node:crypto: a JavaScript verification costs ~30 times
// more CPU, and every signature of the signing path is verified here.
function verifiesEd25519(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  try {
    return verify(
      null,
      message,
      createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' }),
      signature,
    );
  } catch {
    return false;
  }
}
