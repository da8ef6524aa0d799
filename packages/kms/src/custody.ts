import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { ErrorCode, FleetError, isFleetError } from '@wallet-fleet/contracts';
import { createBreaker, getOrCreateMetric, type BreakerOptions, type Check, type Logger } from '@wallet-fleet/service-kit';
import { Counter, Histogram, register as globalRegistry, type Registry } from 'prom-client';
import {
  crc32cOf,
  ethereumAddressOf,
  parseDerSignature,
  rawPublicKeyFromPem,
  signingFailed,
  toEthSignature,
  verifyEd25519,
  verifySecp256k1Digest,
  type EcdsaSignature,
  type EthSignature,
  type KeyAlgorithm,
} from './keys.js';

export interface KmsCustodyOptions {
  projectId: string;
  locationId: string;
  keyRingId: string;
  /**
   * `host:port` of a KMS endpoint reached over an insecure channel with no Google auth: the local
   * emulator. Absent: Cloud KMS with Application Default Credentials.
   */
  apiEndpoint?: string;
  /** Deadline of one attempt of one call (default 5000 ms). */
  callTimeoutMs?: number;
  /** Retries of a call after a transient gRPC failure (default 2): a dead server fails within about callTimeoutMs × (maxRetries + 1). */
  maxRetries?: number;
  /** First backoff between attempts, doubled each retry, jittered (default 100 ms). */
  retryDelayMs?: number;
  /** How long `createKey` waits for the new version to leave PENDING_GENERATION (default 60 000 ms). */
  enableTimeoutMs?: number;
  /** Protection level of Ed25519 keys (default SOFTWARE). secp256k1 keys are always HSM: Cloud KMS offers it nowhere else. */
  ed25519ProtectionLevel?: 'SOFTWARE' | 'HSM';
  logger: Logger;
  /** Where the kms_* and breaker_* metrics go (default: prom-client's global registry). */
  registry?: Registry;
  /** Breaker settings (defaults: 50 % errors over ≥ 5 calls opens it for 5 s; timeout = the whole retry budget). */
  breaker?: Partial<BreakerOptions>;
}

export interface KmsCustody {
  /**
   * Creates the configured key ring unless it exists.
   * @throws FleetError `UNAVAILABLE` (KMS unreachable, retryable), `INTERNAL` (e.g. permission denied).
   */
  ensureKeyRing(): Promise<void>;
  /**
   * Creates the crypto key `keyId` (Ed25519, or secp256k1 at protection level HSM), waits until its
   * first version is ENABLED and returns that version's name and raw public key (Ed25519: 32 bytes;
   * secp256k1: 65 bytes uncompressed). Idempotent: for an existing `keyId` of the same algorithm it
   * returns the existing key's first version, so a retry after a crash reuses the key.
   * @throws FleetError `VALIDATION_FAILED` (bad key id), `UNAVAILABLE` (retryable; also when the
   *   version is still pending after `enableTimeoutMs`), `SIGNING_FAILED` (public key fails its
   *   checksum or is not of `algorithm`), `INTERNAL` (the id exists with another algorithm, the
   *   version failed or was destroyed, permission denied).
   */
  createKey(keyId: string, algorithm: KeyAlgorithm, options?: CreateKeyOptions): Promise<{ keyVersionName: string; publicKey: Uint8Array }>;
  /** The protection level keys of `algorithm` are created at (secp256k1: always HSM). */
  protectionLevelOf(algorithm: KeyAlgorithm): ProtectionLevel;
  /**
   * The raw public key of a key version, cached in memory (a version's public key never changes).
   * @throws FleetError `NOT_FOUND`, `UNAVAILABLE`, `SIGNING_FAILED` (checksum, name or algorithm mismatch).
   */
  getPublicKey(keyVersionName: string, algorithm: KeyAlgorithm): Promise<Uint8Array>;
  /**
   * A 64-byte Ed25519 signature (pure EdDSA) of `message`, checked end to end: the request carries its
   * CRC32C, the response's checksums and name are checked and the signature is verified against the
   * public key before it is returned. With `expectedPublicKey` (the caller's record of the key, e.g.
   * a wallet's), the version's public key must be exactly that one: the signature returned is then
   * known to verify against the caller's key too, and the caller need not verify it again.
   * @throws FleetError `SIGNING_FAILED` (checksum mismatch: retryable; signature invalid or not of
   *   `expectedPublicKey`: not), `NOT_FOUND`, `UNAVAILABLE`.
   */
  signEd25519(keyVersionName: string, message: Uint8Array, expectedPublicKey?: Uint8Array): Promise<Uint8Array>;
  /**
   * A low-s secp256k1 signature of a 32-byte digest, signed as given (for Ethereum: the keccak-256
   * hash); checksums, name and the signature itself are verified as for `signEd25519`.
   * @throws FleetError `VALIDATION_FAILED` (digest not 32 bytes), `SIGNING_FAILED`, `NOT_FOUND`, `UNAVAILABLE`.
   */
  signSecp256k1Digest(keyVersionName: string, digest32: Uint8Array): Promise<EcdsaSignature>;
  /**
   * `signSecp256k1Digest` plus the recovery bit, and (when given) a check that the signature recovers
   * to `expectedAddress` (hex, any case). The bit is found by recovering the version's public key
   * from the signature, which verifies the signature as well: no separate verification is run.
   * @throws as `signSecp256k1Digest`; `SIGNING_FAILED` when the address does not match.
   */
  signEthereumDigest(keyVersionName: string, digest32: Uint8Array, expectedAddress?: string): Promise<EthSignature>;
  /** Readiness: one GetKeyRing attempt, through the breaker. */
  check: Check;
  /** Stops the breaker and closes the gRPC channel. Safe to call twice. */
  close(): Promise<void>;
}

export type ProtectionLevel = 'SOFTWARE' | 'HSM';

export interface CreateKeyOptions {
  /**
   * Labels set on the crypto key at creation, besides `managed-by: wallet-fleet` (Cloud KMS rules:
   * lower-case keys and values, letters, digits, `_` and `-`). They are never changed afterwards.
   */
  labels?: Record<string, string>;
}

type Method = 'GetKeyRing' | 'CreateKeyRing' | 'CreateCryptoKey' | 'GetCryptoKey' | 'GetCryptoKeyVersion' | 'GetPublicKey' | 'AsymmetricSign';

// One attempt with a deadline and no retry inside google-gax: our own loop retries instead, so the
// whole budget is known (the client's default retries UNAVAILABLE for up to 600 s) and the final
// error keeps its real gRPC code (gax reports exhausted retries as DEADLINE_EXCEEDED).
interface AttemptOptions {
  timeout: number;
  retry: null;
}

const GRPC = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

// Every method we call is safe to repeat: reads, signing (no side effect), and creates whose
// ALREADY_EXISTS on a repeat is handled as success.
const TRANSIENT = new Set<number>([GRPC.UNAVAILABLE, GRPC.DEADLINE_EXCEEDED, GRPC.RESOURCE_EXHAUSTED, GRPC.ABORTED, GRPC.INTERNAL]);

const KMS_ALGORITHM: Record<KeyAlgorithm, 'EC_SIGN_ED25519' | 'EC_SIGN_SECP256K1_SHA256'> = {
  ed25519: 'EC_SIGN_ED25519',
  secp256k1: 'EC_SIGN_SECP256K1_SHA256',
};

const KEY_ID = /^[a-zA-Z0-9_-]{1,63}$/;
const VERSION_NAME = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/]+\/cryptoKeyVersions\/[0-9]+$/;

function grpcCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

function isAlreadyExists(err: unknown): boolean {
  return isFleetError(err) && err.details?.grpcCode === GRPC.ALREADY_EXISTS;
}

// gRPC errors read "<code> <NAME>: <details>"; details name resources, never key material (the
// private key never leaves KMS, and we put no key bytes into requests other than what is signed).
function fromGrpc(method: Method, err: unknown): FleetError {
  if (isFleetError(err)) return err;
  const code = grpcCode(err);
  const text = err instanceof Error ? err.message : String(err);
  const details = code === undefined ? undefined : { grpcCode: code };
  const make = (c: ErrorCode, retryable?: boolean) =>
    new FleetError(c, `KMS ${method} failed: ${text}`, { cause: err, ...(retryable === undefined ? {} : { retryable }), ...(details ? { details } : {}) });
  if (code === undefined) return make(ErrorCode.INTERNAL);
  if (TRANSIENT.has(code)) return make(ErrorCode.UNAVAILABLE, true);
  if (code === GRPC.NOT_FOUND) return make(ErrorCode.NOT_FOUND);
  if (method === 'AsymmetricSign' && (code === GRPC.INVALID_ARGUMENT || code === GRPC.FAILED_PRECONDITION)) {
    // INVALID_ARGUMENT here is KMS refusing our request checksum (or the digest's shape);
    // FAILED_PRECONDITION is a version that is not ENABLED (disabled, destroyed, pending).
    return make(ErrorCode.SIGNING_FAILED);
  }
  if (method === 'GetPublicKey' && code === GRPC.FAILED_PRECONDITION) return make(ErrorCode.SIGNING_FAILED);
  return make(ErrorCode.INTERNAL);
}

function int64(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const inner = typeof v === 'object' && 'value' in v ? (v as { value: unknown }).value : v;
  return inner === undefined || inner === null ? 0 : Number(String(inner));
}

function requireVersionName(name: string): void {
  if (typeof name !== 'string' || !VERSION_NAME.test(name)) {
    throw FleetError.validation([{ path: 'keyVersionName', message: 'must be projects/*/locations/*/keyRings/*/cryptoKeys/*/cryptoKeyVersions/*' }]);
  }
}

function requireDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== 32) {
    throw FleetError.validation([{ path: 'digest32', message: 'must be 32 bytes' }]);
  }
}

// The client builds its own grpc-js channel: the insecure credentials must come from that same copy
// of grpc-js (google-gax's), which pnpm links only inside @google-cloud/kms's folder.
function insecureCredentials(): NonNullable<ConstructorParameters<typeof KeyManagementServiceClient>[0]>['sslCreds'] {
  const require = createRequire(import.meta.url);
  const gax = createRequire(require.resolve('@google-cloud/kms'))('google-gax') as {
    grpc: { credentials: { createInsecure(): NonNullable<ConstructorParameters<typeof KeyManagementServiceClient>[0]>['sslCreds'] } };
  };
  return gax.grpc.credentials.createInsecure();
}

function splitEndpoint(endpoint: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(endpoint);
  if (!m) throw new FleetError(ErrorCode.INTERNAL, `KMS apiEndpoint must be host:port, got ${JSON.stringify(endpoint)}`);
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Key custody through Cloud KMS (or the emulator at `apiEndpoint`). Every call has a deadline per
 * attempt, bounded retries with backoff on transient gRPC codes, and runs behind an opossum breaker
 * named `kms`; integrity checksums are sent and checked on every request and response; every
 * signature is verified locally before it is returned.
 *
 * Metrics: `kms_request_duration_seconds{method,outcome}` (outcome `success`/`error`, per logical
 * call including retries and checks), `kms_errors_total{method,code}` (FleetError code), and the
 * breaker's `breaker_state{name="kms"}`, `breaker_calls_total{name="kms",outcome}`.
 *
 * @throws FleetError `INTERNAL` at once when `apiEndpoint` is not `host:port`.
 */
export function createKmsCustody(opts: KmsCustodyOptions): KmsCustody {
  const callTimeoutMs = opts.callTimeoutMs ?? 5000;
  const maxRetries = opts.maxRetries ?? 2;
  const retryDelayMs = opts.retryDelayMs ?? 100;
  const enableTimeoutMs = opts.enableTimeoutMs ?? 60_000;
  const ed25519Level = opts.ed25519ProtectionLevel ?? 'SOFTWARE';
  const registry = opts.registry ?? globalRegistry;
  const log = opts.logger.child({ component: 'kms' });
  const locationName = `projects/${opts.projectId}/locations/${opts.locationId}`;
  const keyRingName = `${locationName}/keyRings/${opts.keyRingId}`;

  const reconnect = {
    // gax starts reconnect backoff at 1 s growing to grpc-js's 120 s; after an outage calls would keep
    // failing fast long after KMS is back. A few seconds at most is plenty for a handful of channels.
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 5000,
  };
  let client: KeyManagementServiceClient;
  if (opts.apiEndpoint) {
    const { host, port } = splitEndpoint(opts.apiEndpoint);
    client = new KeyManagementServiceClient({
      apiEndpoint: host,
      port,
      sslCreds: insecureCredentials(),
      // Set explicitly, or the client asks google-auth for it, which probes the metadata server.
      universeDomain: 'googleapis.com',
      ...reconnect,
    });
  } else {
    client = new KeyManagementServiceClient({ ...reconnect });
  }

  const duration = getOrCreateMetric(
    registry,
    'kms_request_duration_seconds',
    () =>
      new Histogram({
        name: 'kms_request_duration_seconds',
        help: 'KMS calls by method and outcome, including retries and integrity checks',
        labelNames: ['method', 'outcome'],
        buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers: [registry],
      }),
  );
  const errors = getOrCreateMetric(
    registry,
    'kms_errors_total',
    () => new Counter({ name: 'kms_errors_total', help: 'Failed KMS calls by method and error code', labelNames: ['method', 'code'], registers: [registry] }),
  );

  // Past the whole retry budget of one call the breaker gives up on it (a hung auth or channel
  // would otherwise hang the caller): every attempt's deadline, the backoffs, and a margin.
  const budgetMs = callTimeoutMs * (maxRetries + 1) + retryDelayMs * 2 ** maxRetries + 500;
  const breaker = createBreaker<[() => Promise<unknown>], unknown>(
    'kms',
    (run) => run(),
    {
      timeoutMs: budgetMs,
      ...opts.breaker,
    },
    registry,
  );

  /** One logical call: attempts with deadlines and backoff, inside the breaker. */
  async function rpc<T>(method: Method, attempt: (o: AttemptOptions) => Promise<T>, retries = maxRetries): Promise<T> {
    return (await breaker.fire(async () => {
      for (let n = 0; ; n++) {
        try {
          return await attempt({ timeout: callTimeoutMs, retry: null });
        } catch (err) {
          const code = grpcCode(err);
          if (code !== undefined && TRANSIENT.has(code) && n < retries) {
            const delay = retryDelayMs * 2 ** n * (0.5 + Math.random() / 2);
            log.debug({ method, grpcCode: code, attempt: n + 1, delayMs: Math.round(delay) }, 'kms call failed, retrying');
            await sleep(delay);
            continue;
          }
          throw fromGrpc(method, err);
        }
      }
    })) as T;
  }

  /** Times a whole operation (RPCs and checks) and counts its failure by code. */
  async function instrument<T>(method: Method, op: () => Promise<T>): Promise<T> {
    const end = duration.startTimer({ method });
    try {
      const result = await op();
      end({ outcome: 'success' });
      return result;
    } catch (err) {
      end({ outcome: 'error' });
      const fleet = isFleetError(err) ? err : fromGrpc(method, err);
      errors.inc({ method, code: fleet.code });
      if (fleet.code !== ErrorCode.NOT_FOUND && fleet.code !== ErrorCode.VALIDATION_FAILED) {
        log.warn({ method, code: fleet.code, retryable: fleet.retryable, error: fleet.message }, 'kms call failed');
      }
      throw fleet;
    }
  }

  const protectionLevelOf = (algorithm: KeyAlgorithm): ProtectionLevel => (algorithm === 'secp256k1' ? 'HSM' : ed25519Level);

  const publicKeys = new Map<string, Promise<Uint8Array>>();

  async function getPublicKey(keyVersionName: string, algorithm: KeyAlgorithm): Promise<Uint8Array> {
    requireVersionName(keyVersionName);
    const cacheKey = `${algorithm} ${keyVersionName}`;
    let cached = publicKeys.get(cacheKey);
    if (!cached) {
      cached = instrument('GetPublicKey', async () => {
        const [res] = await rpc('GetPublicKey', (o) => client.getPublicKey({ name: keyVersionName }, o));
        const pem = res.pem ?? '';
        const crc = int64(res.pemCrc32c);
        if (crc === undefined || crc !== crc32cOf(pem)) throw signingFailed('KMS public key failed its CRC32C check', true);
        if (res.name !== keyVersionName) throw signingFailed('KMS answered for another key version', true);
        if (res.algorithm !== KMS_ALGORITHM[algorithm]) throw signingFailed(`key version is ${String(res.algorithm)}, not ${KMS_ALGORITHM[algorithm]}`);
        return rawPublicKeyFromPem(pem, algorithm);
      });
      publicKeys.set(cacheKey, cached);
      // Only successes are worth keeping: a failure must not stick.
      cached.catch(() => publicKeys.delete(cacheKey));
    }
    return cached;
  }

  async function waitEnabled(versionName: string): Promise<void> {
    const until = Date.now() + enableTimeoutMs;
    let delay = 25;
    for (;;) {
      const [version] = await instrument('GetCryptoKeyVersion', () => rpc('GetCryptoKeyVersion', (o) => client.getCryptoKeyVersion({ name: versionName }, o)));
      if (version.state === 'ENABLED') return;
      if (version.state !== 'PENDING_GENERATION') {
        throw new FleetError(ErrorCode.INTERNAL, `KMS key version ${versionName} is ${String(version.state)}`, { retryable: false });
      }
      if (Date.now() + delay > until) {
        throw new FleetError(ErrorCode.UNAVAILABLE, `KMS key version ${versionName} still pending after ${enableTimeoutMs} ms`, { retryable: true });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 1000);
    }
  }

  /** A low-s signature of `digest32` from AsymmetricSign, its integrity checked (not yet verified). */
  async function asymmetricSignDigest(keyVersionName: string, digest32: Uint8Array): Promise<EcdsaSignature> {
    const digest = Buffer.from(digest32);
    const [res] = await rpc('AsymmetricSign', (o) =>
      client.asymmetricSign({ name: keyVersionName, digest: { sha256: digest }, digestCrc32c: { value: crc32cOf(digest) } }, o),
    );
    return parseDerSignature(checkSignResponse(res, keyVersionName, 'verifiedDigestCrc32c'));
  }

  async function signSecp256k1Digest(keyVersionName: string, digest32: Uint8Array): Promise<EcdsaSignature> {
    requireVersionName(keyVersionName);
    requireDigest(digest32);
    return instrument('AsymmetricSign', async () => {
      const sig = await asymmetricSignDigest(keyVersionName, digest32);
      const publicKey = await getPublicKey(keyVersionName, 'secp256k1');
      if (!verifySecp256k1Digest(sig, digest32, publicKey)) throw signingFailed('KMS signature does not verify against the public key');
      return sig;
    });
  }

  let closed: Promise<void> | undefined;
  return {
    async ensureKeyRing() {
      await instrument('GetKeyRing', async () => {
        try {
          await rpc('GetKeyRing', (o) => client.getKeyRing({ name: keyRingName }, o));
          return;
        } catch (err) {
          if (!(isFleetError(err) && err.code === ErrorCode.NOT_FOUND)) throw err;
        }
        try {
          await rpc('CreateKeyRing', (o) => client.createKeyRing({ parent: locationName, keyRingId: opts.keyRingId, keyRing: {} }, o));
          log.info({ keyRing: keyRingName }, 'kms key ring created');
        } catch (err) {
          // Another instance created it between our get and create.
          if (!isAlreadyExists(err)) throw err;
        }
      });
    },

    protectionLevelOf,

    async createKey(keyId, algorithm, options) {
      if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) {
        throw FleetError.validation([{ path: 'keyId', message: 'must match [a-zA-Z0-9_-]{1,63}' }]);
      }
      if (!(algorithm in KMS_ALGORITHM)) throw FleetError.validation([{ path: 'algorithm', message: 'must be ed25519 or secp256k1' }]);
      const keyName = `${keyRingName}/cryptoKeys/${keyId}`;
      const kmsAlgorithm = KMS_ALGORITHM[algorithm];
      await instrument('CreateCryptoKey', async () => {
        try {
          await rpc('CreateCryptoKey', (o) =>
            client.createCryptoKey(
              {
                parent: keyRingName,
                cryptoKeyId: keyId,
                cryptoKey: {
                  purpose: 'ASYMMETRIC_SIGN',
                  versionTemplate: { algorithm: kmsAlgorithm, protectionLevel: protectionLevelOf(algorithm) },
                  labels: { ...options?.labels, 'managed-by': 'wallet-fleet' },
                },
              },
              o,
            ),
          );
          return;
        } catch (err) {
          // Ours from an earlier attempt (a lost response, or a crash before the database write):
          // reuse it, provided it is the kind of key asked for.
          if (!isAlreadyExists(err)) throw err;
        }
        const [existing] = await rpc('GetCryptoKey', (o) => client.getCryptoKey({ name: keyName }, o));
        if (existing.purpose !== 'ASYMMETRIC_SIGN' || existing.versionTemplate?.algorithm !== kmsAlgorithm) {
          throw new FleetError(ErrorCode.INTERNAL, `KMS key ${keyId} already exists with algorithm ${String(existing.versionTemplate?.algorithm)}`, {
            retryable: false,
          });
        }
        log.info({ keyId }, 'kms key already existed, reusing it');
      });
      // Asymmetric keys have no primary version: the first one is always number 1.
      const keyVersionName = `${keyName}/cryptoKeyVersions/1`;
      await waitEnabled(keyVersionName);
      const publicKey = await getPublicKey(keyVersionName, algorithm);
      return { keyVersionName, publicKey };
    },

    getPublicKey,

    async signEd25519(keyVersionName, message, expectedPublicKey) {
      requireVersionName(keyVersionName);
      if (!(message instanceof Uint8Array)) throw FleetError.validation([{ path: 'message', message: 'must be bytes' }]);
      return instrument('AsymmetricSign', async () => {
        const data = Buffer.from(message);
        const [res] = await rpc('AsymmetricSign', (o) => client.asymmetricSign({ name: keyVersionName, data, dataCrc32c: { value: crc32cOf(data) } }, o));
        const signature = checkSignResponse(res, keyVersionName, 'verifiedDataCrc32c');
        if (signature.length !== 64) throw signingFailed('KMS Ed25519 signature is not 64 bytes');
        const publicKey = await getPublicKey(keyVersionName, 'ed25519');
        if (expectedPublicKey !== undefined && !Buffer.from(publicKey).equals(expectedPublicKey)) {
          throw signingFailed(`KMS key version ${keyVersionName} does not hold the expected public key`);
        }
        if (!verifyEd25519(signature, message, publicKey)) throw signingFailed('KMS signature does not verify against the public key');
        return signature;
      });
    },

    signSecp256k1Digest,

    async signEthereumDigest(keyVersionName, digest32, expectedAddress) {
      requireVersionName(keyVersionName);
      requireDigest(digest32);
      return instrument('AsymmetricSign', async () => {
        const sig = await asymmetricSignDigest(keyVersionName, digest32);
        const publicKey = await getPublicKey(keyVersionName, 'secp256k1');
        if (expectedAddress !== undefined && ethereumAddressOf(publicKey) !== expectedAddress.toLowerCase()) {
          throw signingFailed('KMS key does not belong to the expected address');
        }
        // A recovery that yields the version's public key is a verification of the signature (and
        // costs as much CPU as one, about 1.6 ms in JavaScript): it is not verified a second time.
        return toEthSignature(sig, digest32, publicKey);
      });
    },

    check: {
      name: 'kms',
      // One attempt, so the probe answers within its own timeout.
      timeoutMs: callTimeoutMs + 1000,
      check: async () => {
        try {
          await instrument('GetKeyRing', () => rpc('GetKeyRing', (o) => client.getKeyRing({ name: keyRingName }, o), 0));
        } catch (err) {
          // The usual answer before the kms component's start (ensureKeyRing) has run: say so in
          // words, not as a bare gRPC NOT_FOUND that reads like lost keys.
          if (isFleetError(err) && err.code === ErrorCode.NOT_FOUND) {
            throw new FleetError(ErrorCode.NOT_FOUND, `key ring ${keyRingName} does not exist (yet: the service creates it when it starts)`);
          }
          throw err;
        }
      },
    },

    close() {
      closed ??= (async () => {
        breaker.shutdown();
        await client.close();
      })();
      return closed;
    },
  };
}

/**
 * The signature bytes of an AsymmetricSign response after its integrity checks: KMS saw our
 * checksum (else the request may have been corrupted in transit), the signature matches its
 * checksum, and the response names the version we asked for.
 */
function checkSignResponse(
  res: {
    signature?: Uint8Array | string | null;
    signatureCrc32c?: unknown;
    verifiedDataCrc32c?: boolean | null;
    verifiedDigestCrc32c?: boolean | null;
    name?: string | null;
  },
  keyVersionName: string,
  verifiedField: 'verifiedDataCrc32c' | 'verifiedDigestCrc32c',
): Uint8Array {
  if (res[verifiedField] !== true) throw signingFailed('KMS did not verify the request checksum', true);
  if (res.name !== keyVersionName) throw signingFailed('KMS answered for another key version', true);
  const signature = typeof res.signature === 'string' ? Buffer.from(res.signature, 'base64') : res.signature ? Buffer.from(res.signature) : Buffer.alloc(0);
  const crc = int64(res.signatureCrc32c);
  if (crc === undefined || crc !== crc32cOf(signature)) throw signingFailed('KMS signature failed its CRC32C check', true);
  return new Uint8Array(signature);
}
