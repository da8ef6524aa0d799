import * as grpc from '@grpc/grpc-js';
import {
  crc32cOf,
  generateKeyPair,
  isSupportedAlgorithm,
  publicKeyPem,
  sha256Digest,
  signEcdsaDigest,
  signEd25519,
  SUPPORTED_ALGORITHMS,
  type Algorithm,
} from './keys.js';
import { loadKmsService } from './protos.js';
import { Store, type CryptoKeyRecord, type KeyRingRecord, type ProtectionLevel, type VersionRecord } from './store.js';

export interface KmsEmulatorOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Directory for keys between runs (one JSON file per resource). Absent: keys live in memory only. */
  dataDir?: string;
  /** How long a new key version stays PENDING_GENERATION before it is ENABLED (default 50 ms). */
  pendingMs?: number;
  /**
   * Test hook: sees every successful response before it is sent and may return a replacement, so a
   * client's integrity checks can be exercised (a flipped signature byte, a wrong checksum).
   */
  intercept?: (method: string, request: Record<string, unknown>, response: Record<string, unknown>) => unknown;
  /** Where the emulator's few log lines go (default: nowhere). */
  log?: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

export interface KmsEmulator {
  port: number;
  /** `host:port`, what a client's `apiEndpoint` option takes. */
  endpoint: string;
  /** Stops listening and closes open connections (in-flight calls get up to 1 s). Safe to call twice. */
  stop(): Promise<void>;
}

const NOT_FOR_PRODUCTION_BANNER = 'KMS EMULATOR - NOT FOR PRODUCTION: private keys are kept unencrypted in memory or in plain files on local disk';

class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

const ID = /^[a-zA-Z0-9_-]{1,63}$/;
const LOCATION = /^projects\/[^/]+\/locations\/[^/]+$/;
const KEY_RING = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[a-zA-Z0-9_-]{1,63}$/;
const CRYPTO_KEY = /^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[a-zA-Z0-9_-]{1,63}\/cryptoKeys\/[a-zA-Z0-9_-]{1,63}$/;
const VERSION = /^(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[a-zA-Z0-9_-]{1,63}\/cryptoKeys\/[a-zA-Z0-9_-]{1,63})\/cryptoKeyVersions\/[0-9]+$/;

function requireName(value: unknown, pattern: RegExp, what: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `${what} ${JSON.stringify(value ?? '')} is not a valid resource name`);
  }
  return value;
}

function requireId(value: unknown, what: string): string {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new RpcError(grpc.status.INVALID_ARGUMENT, `${what} must match [a-zA-Z0-9_-]{1,63}`);
  }
  return value;
}

function timestamp(ms: number) {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

// google.protobuf.Int64Value as proto-loader hands it over with `longs: String`: absent, or {value}.
// An absent inner value is the default 0 (proto3 omits zeros on the wire).
function int64Value(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const inner = (v as { value?: unknown }).value;
  return inner === undefined || inner === null ? 0 : Number(inner);
}

function bytesOf(v: unknown): Buffer | undefined {
  return v === undefined || v === null ? undefined : Buffer.from(v as Uint8Array);
}

/**
 * Starts a gRPC server that speaks the subset of `google.cloud.kms.v1.KeyManagementService` the
 * fleet uses, so that the real `@google-cloud/kms` client talks to it unchanged. NOT FOR PRODUCTION.
 */
export async function startKmsEmulator(opts: KmsEmulatorOptions = {}): Promise<KmsEmulator> {
  const host = opts.host ?? '127.0.0.1';
  const pendingMs = opts.pendingMs ?? 50;
  const log = opts.log ?? (() => {});
  const store = await Store.open(opts.dataDir);

  const versionState = (v: VersionRecord) => (Date.now() >= v.generateTimeMs ? 'ENABLED' : 'PENDING_GENERATION');

  const keyRingMessage = (r: KeyRingRecord) => ({ name: r.name, createTime: timestamp(r.createTimeMs) });
  const cryptoKeyMessage = (k: CryptoKeyRecord) => ({
    name: k.name,
    purpose: k.purpose,
    createTime: timestamp(k.createTimeMs),
    versionTemplate: { protectionLevel: k.protectionLevel, algorithm: k.algorithm },
    labels: k.labels,
  });
  const versionMessage = (v: VersionRecord) => {
    const state = versionState(v);
    return {
      name: v.name,
      state,
      protectionLevel: v.protectionLevel,
      algorithm: v.algorithm,
      createTime: timestamp(v.createTimeMs),
      ...(state === 'ENABLED' ? { generateTime: timestamp(v.generateTimeMs) } : {}),
    };
  };

  const getVersion = (name: unknown): VersionRecord => {
    const n = requireName(name, VERSION, 'name');
    const v = store.versions.get(n);
    if (!v) throw new RpcError(grpc.status.NOT_FOUND, `${n} not found.`);
    return v;
  };
  const requireEnabled = (v: VersionRecord) => {
    const state = versionState(v);
    if (state !== 'ENABLED') {
      throw new RpcError(grpc.status.FAILED_PRECONDITION, `${v.name} is not enabled, current state is: ${state}.`);
    }
  };

  const handlers: Record<string, (req: Record<string, unknown>) => Promise<unknown> | unknown> = {
    CreateKeyRing: async (req) => {
      const parent = requireName(req.parent, LOCATION, 'parent');
      const name = `${parent}/keyRings/${requireId(req.keyRingId, 'key_ring_id')}`;
      if (store.keyRings.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `KeyRing ${name} already exists.`);
      const record: KeyRingRecord = { name, createTimeMs: Date.now() };
      // Claimed before the first await: two concurrent creates of one id cannot both succeed.
      store.keyRings.set(name, record);
      try {
        await store.persist('keyRings', record);
      } catch (err) {
        store.keyRings.delete(name);
        throw err;
      }
      return keyRingMessage(record);
    },

    GetKeyRing: (req) => {
      const name = requireName(req.name, KEY_RING, 'name');
      const r = store.keyRings.get(name);
      if (!r) throw new RpcError(grpc.status.NOT_FOUND, `${name} not found.`);
      return keyRingMessage(r);
    },

    CreateCryptoKey: async (req) => {
      const parent = requireName(req.parent, KEY_RING, 'parent');
      const id = requireId(req.cryptoKeyId, 'crypto_key_id');
      if (!store.keyRings.has(parent)) throw new RpcError(grpc.status.NOT_FOUND, `${parent} not found.`);
      const key = (req.cryptoKey ?? {}) as {
        purpose?: string;
        versionTemplate?: { algorithm?: string; protectionLevel?: string };
        labels?: Record<string, string>;
      };
      if (key.purpose !== 'ASYMMETRIC_SIGN') {
        throw new RpcError(
          grpc.status.INVALID_ARGUMENT,
          `The emulator supports purpose ASYMMETRIC_SIGN only, not ${key.purpose ?? 'CRYPTO_KEY_PURPOSE_UNSPECIFIED'}.`,
        );
      }
      const algorithm = key.versionTemplate?.algorithm;
      if (!isSupportedAlgorithm(algorithm)) {
        throw new RpcError(
          grpc.status.INVALID_ARGUMENT,
          `Algorithm ${algorithm ?? 'unspecified'} is not supported (supported: ${SUPPORTED_ALGORITHMS.join(', ')}).`,
        );
      }
      const level = key.versionTemplate?.protectionLevel ?? 'PROTECTION_LEVEL_UNSPECIFIED';
      const protectionLevel: ProtectionLevel = level === 'PROTECTION_LEVEL_UNSPECIFIED' ? 'SOFTWARE' : (level as ProtectionLevel);
      if (protectionLevel !== 'SOFTWARE' && protectionLevel !== 'HSM') {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `Protection level ${level} is not supported.`);
      }
      // Like the real service: secp256k1 exists only in Cloud HSM.
      if (algorithm === 'EC_SIGN_SECP256K1_SHA256' && protectionLevel !== 'HSM') {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Algorithm EC_SIGN_SECP256K1_SHA256 requires protection level HSM.');
      }
      const name = `${parent}/cryptoKeys/${id}`;
      if (store.cryptoKeys.has(name)) throw new RpcError(grpc.status.ALREADY_EXISTS, `CryptoKey ${name} already exists.`);
      const now = Date.now();
      const record: CryptoKeyRecord = {
        name,
        purpose: 'ASYMMETRIC_SIGN',
        algorithm,
        protectionLevel,
        labels: key.labels ?? {},
        createTimeMs: now,
        nextVersion: 1,
      };
      let version: VersionRecord | undefined;
      if (!req.skipInitialVersionCreation) {
        const pair = generateKeyPair(algorithm);
        version = {
          name: `${name}/cryptoKeyVersions/${record.nextVersion++}`,
          algorithm,
          protectionLevel,
          createTimeMs: now,
          generateTimeMs: now + pendingMs,
          privateKeyHex: Buffer.from(pair.privateKey).toString('hex'),
          publicKeyHex: Buffer.from(pair.publicKey).toString('hex'),
        };
      }
      store.cryptoKeys.set(name, record);
      if (version) store.versions.set(version.name, version);
      try {
        // The version first: a crash in between leaves a key that has no version file yet; the
        // other order could leave an orphan version nothing lists.
        if (version) await store.persist('versions', version);
        await store.persist('cryptoKeys', record);
      } catch (err) {
        store.cryptoKeys.delete(name);
        if (version) store.versions.delete(version.name);
        throw err;
      }
      return cryptoKeyMessage(record);
    },

    GetCryptoKey: (req) => {
      const name = requireName(req.name, CRYPTO_KEY, 'name');
      const k = store.cryptoKeys.get(name);
      if (!k) throw new RpcError(grpc.status.NOT_FOUND, `${name} not found.`);
      return cryptoKeyMessage(k);
    },

    GetCryptoKeyVersion: (req) => versionMessage(getVersion(req.name)),

    ListCryptoKeyVersions: (req) => {
      const parent = requireName(req.parent, CRYPTO_KEY, 'parent');
      if (!store.cryptoKeys.has(parent)) throw new RpcError(grpc.status.NOT_FOUND, `${parent} not found.`);
      const versions = [...store.versions.values()]
        .filter((v) => v.name.startsWith(`${parent}/cryptoKeyVersions/`))
        .sort((a, b) => Number(a.name.split('/').pop()) - Number(b.name.split('/').pop()));
      // One page holds everything: an emulator's keys have a handful of versions at most.
      return { cryptoKeyVersions: versions.map(versionMessage), nextPageToken: '', totalSize: versions.length };
    },

    GetPublicKey: (req) => {
      const v = getVersion(req.name);
      requireEnabled(v);
      const format = (req.publicKeyFormat as string | undefined) ?? 'PUBLIC_KEY_FORMAT_UNSPECIFIED';
      if (format !== 'PUBLIC_KEY_FORMAT_UNSPECIFIED' && format !== 'PEM') {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, `Public key format ${format} is not supported by the emulator.`);
      }
      const pem = publicKeyPem(v.algorithm, Buffer.from(v.publicKeyHex, 'hex'));
      return {
        pem,
        algorithm: v.algorithm,
        pemCrc32c: { value: String(crc32cOf(pem)) },
        name: v.name,
        protectionLevel: v.protectionLevel,
      };
    },

    AsymmetricSign: (req) => {
      const v = getVersion(req.name);
      requireEnabled(v);
      const data = bytesOf(req.data);
      const digest = req.digest as { sha256?: unknown; sha384?: unknown; sha512?: unknown } | undefined | null;
      const dataCrc = int64Value(req.dataCrc32c);
      const digestCrc = int64Value(req.digestCrc32c);
      // proto3 does not put empty bytes on the wire: absent data is empty data.
      const hasData = data !== undefined && data.length > 0;
      if (hasData && digest) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Only one of data and digest may be set.');
      if (dataCrc !== undefined && crc32cOf(data ?? new Uint8Array(0)) !== dataCrc) {
        throw new RpcError(grpc.status.INVALID_ARGUMENT, 'The checksum in field data_crc32c did not match the data in field data.');
      }
      const privateKey = Buffer.from(v.privateKeyHex, 'hex');
      let signature: Uint8Array;
      if (v.algorithm === 'EC_SIGN_ED25519') {
        if (digest) throw new RpcError(grpc.status.INVALID_ARGUMENT, `${v.algorithm} signs data: digest is not accepted.`);
        signature = signEd25519(privateKey, data ?? new Uint8Array(0));
      } else {
        let toSign: Uint8Array;
        if (digest) {
          const sha = bytesOf(digest.sha256);
          if (!sha || digest.sha384 || digest.sha512) {
            throw new RpcError(grpc.status.INVALID_ARGUMENT, `${v.algorithm} requires digest.sha256.`);
          }
          if (sha.length !== 32) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'digest.sha256 must be 32 bytes long.');
          if (digestCrc !== undefined && crc32cOf(sha) !== digestCrc) {
            throw new RpcError(grpc.status.INVALID_ARGUMENT, 'The checksum in field digest_crc32c did not match the data in field digest.');
          }
          toSign = sha;
        } else if (hasData) {
          toSign = sha256Digest(data);
        } else {
          throw new RpcError(grpc.status.INVALID_ARGUMENT, 'Either digest or data must be set.');
        }
        signature = signEcdsaDigest(v.algorithm, privateKey, toSign);
      }
      return {
        signature: Buffer.from(signature),
        signatureCrc32c: { value: String(crc32cOf(signature)) },
        verifiedDigestCrc32c: digestCrc !== undefined,
        verifiedDataCrc32c: dataCrc !== undefined,
        name: v.name,
        protectionLevel: v.protectionLevel,
      };
    },
  };

  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(handlers)) {
    implementation[method] = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      Promise.resolve()
        .then(() => handler(call.request))
        .then((response) => (opts.intercept ? opts.intercept(method, call.request, response as Record<string, unknown>) : response))
        .then(
          (response) => callback(null, response),
          (err: unknown) => {
            if (err instanceof RpcError) {
              callback({ code: err.code, details: err.message });
            } else {
              log('warn', 'kms emulator internal error', { method, error: err instanceof Error ? err.message : String(err) });
              callback({ code: grpc.status.INTERNAL, details: 'internal error' });
            }
          },
        );
    };
  }

  const server = new grpc.Server();
  server.addService(loadKmsService(), implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  const endpoint = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  log('warn', NOT_FOR_PRODUCTION_BANNER, { endpoint, dataDir: opts.dataDir ?? null, algorithms: [...SUPPORTED_ALGORITHMS] satisfies Algorithm[] });

  let stopping: Promise<void> | undefined;
  return {
    port,
    endpoint,
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        // tryShutdown waits for in-flight calls; a client that keeps its connection open would hold
        // it forever, so past a second the rest is cut.
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopping;
    },
  };
}
