import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { crc32c } from '@aws-crypto/crc32c';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import * as grpc from '@grpc/grpc-js';
import { ed25519 } from '@noble/curves/ed25519';
import { p256 } from '@noble/curves/nist';
import { secp256k1 } from '@noble/curves/secp256k1';
import { sha256 } from '@noble/hashes/sha2';
import { waitFor } from '@wallet-fleet/testing';
import { startKmsEmulator, type KmsEmulator } from '../src/index.js';

const LOCATION = 'projects/test-project/locations/europe-west1';

function clientFor(emulator: KmsEmulator): KeyManagementServiceClient {
  return new KeyManagementServiceClient({
    apiEndpoint: '127.0.0.1',
    port: emulator.port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: 'googleapis.com',
  });
}

// The raw public key inside a PEM, read by node:crypto (an independent parser) rather than by slicing.
function rawPublicKey(pem: string): Uint8Array {
  const jwk = createPublicKey(pem).export({ format: 'jwk' });
  if (jwk.kty === 'OKP') return Buffer.from(jwk.x!, 'base64url');
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
}

async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as { code: number }).code;
  }
  assert.fail('expected the call to fail');
}

async function waitEnabled(client: KeyManagementServiceClient, name: string): Promise<void> {
  await waitFor(async () => (await client.getCryptoKeyVersion({ name }))[0].state === 'ENABLED', { intervalMs: 10, what: `${name} to become ENABLED` });
}

describe('kms-emulator', () => {
  let emulator: KmsEmulator;
  let client: KeyManagementServiceClient;
  let ring: string;
  let n = 0;

  async function createKey(
    algorithm: 'EC_SIGN_ED25519' | 'EC_SIGN_SECP256K1_SHA256' | 'EC_SIGN_P256_SHA256',
    protectionLevel: 'SOFTWARE' | 'HSM' = 'SOFTWARE',
  ): Promise<string> {
    const [key] = await client.createCryptoKey({
      parent: ring,
      cryptoKeyId: `key-${++n}`,
      cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm, protectionLevel } },
    });
    const version = `${key.name}/cryptoKeyVersions/1`;
    await waitEnabled(client, version);
    return version;
  }

  before(async () => {
    emulator = await startKmsEmulator({ port: 0, pendingMs: 20 });
    client = clientFor(emulator);
    const [created] = await client.createKeyRing({ parent: LOCATION, keyRingId: 'ring', keyRing: {} });
    ring = created.name!;
  });

  after(async () => {
    await client.close();
    await emulator.stop();
  });

  it('should create a key ring that can be read back and refuse a second one with the same id', async () => {
    const [got] = await client.getKeyRing({ name: ring });
    assert.equal(got.name, `${LOCATION}/keyRings/ring`);
    assert.equal(await codeOf(client.createKeyRing({ parent: LOCATION, keyRingId: 'ring', keyRing: {} })), grpc.status.ALREADY_EXISTS);
    assert.equal(await codeOf(client.getKeyRing({ name: `${LOCATION}/keyRings/missing` })), grpc.status.NOT_FOUND);
  });

  it('should start a new version in PENDING_GENERATION, refuse to use it, then enable it', async () => {
    const slow = await startKmsEmulator({ port: 0, pendingMs: 1000 });
    const slowClient = clientFor(slow);
    try {
      const [r] = await slowClient.createKeyRing({ parent: LOCATION, keyRingId: 'r', keyRing: {} });
      const [key] = await slowClient.createCryptoKey({
        parent: r.name,
        cryptoKeyId: 'k',
        cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_ED25519' } },
      });
      assert.equal(key.versionTemplate?.algorithm, 'EC_SIGN_ED25519');
      const name = `${key.name}/cryptoKeyVersions/1`;
      const [pending] = await slowClient.getCryptoKeyVersion({ name });
      assert.equal(pending.state, 'PENDING_GENERATION');
      assert.equal(await codeOf(slowClient.asymmetricSign({ name, data: Buffer.from('x') })), grpc.status.FAILED_PRECONDITION);
      assert.equal(await codeOf(slowClient.getPublicKey({ name })), grpc.status.FAILED_PRECONDITION);
      await waitEnabled(slowClient, name);
      const [versions] = await slowClient.listCryptoKeyVersions({ parent: key.name });
      assert.deepEqual(
        versions.map((v) => [v.name, v.state]),
        [[name, 'ENABLED']],
      );
    } finally {
      await slowClient.close();
      await slow.stop();
    }
  });

  it('should refuse a duplicate crypto key id, secp256k1 outside HSM, and unknown names', async () => {
    const version = await createKey('EC_SIGN_ED25519');
    const keyName = version.replace(/\/cryptoKeyVersions\/1$/, '');
    const keyId = keyName.split('/').pop()!;
    assert.equal(
      await codeOf(
        client.createCryptoKey({
          parent: ring,
          cryptoKeyId: keyId,
          cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_ED25519' } },
        }),
      ),
      grpc.status.ALREADY_EXISTS,
    );
    assert.equal(
      await codeOf(
        client.createCryptoKey({
          parent: ring,
          cryptoKeyId: 'k1-software',
          cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_SECP256K1_SHA256', protectionLevel: 'SOFTWARE' } },
        }),
      ),
      grpc.status.INVALID_ARGUMENT,
    );
    assert.equal(
      await codeOf(
        client.createCryptoKey({
          parent: `${LOCATION}/keyRings/nope`,
          cryptoKeyId: 'k',
          cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_ED25519' } },
        }),
      ),
      grpc.status.NOT_FOUND,
    );
    assert.equal(await codeOf(client.getPublicKey({ name: `${keyName}/cryptoKeyVersions/2` })), grpc.status.NOT_FOUND);
    const [key] = await client.getCryptoKey({ name: keyName });
    assert.equal(key.purpose, 'ASYMMETRIC_SIGN');
  });

  it('should return a PEM public key with a matching CRC32C for each algorithm', async () => {
    for (const [algorithm, level, size] of [
      ['EC_SIGN_ED25519', 'SOFTWARE', 32],
      ['EC_SIGN_SECP256K1_SHA256', 'HSM', 65],
      ['EC_SIGN_P256_SHA256', 'SOFTWARE', 65],
    ] as const) {
      const name = await createKey(algorithm, level);
      const [pk] = await client.getPublicKey({ name });
      assert.equal(pk.name, name);
      assert.equal(pk.algorithm, algorithm);
      assert.equal(pk.protectionLevel, level);
      // Int64 values arrive as strings.
      assert.equal(pk.pemCrc32c?.value, String(crc32c(Buffer.from(pk.pem!, 'utf8'))));
      assert.equal(rawPublicKey(pk.pem!).length, size);
    }
  });

  it('should sign Ed25519 data (pure EdDSA) with a signature that verifies and checksums that match', async () => {
    const name = await createKey('EC_SIGN_ED25519');
    const [pk] = await client.getPublicKey({ name });
    const data = Buffer.from('a solana message');
    const [res] = await client.asymmetricSign({ name, data, dataCrc32c: { value: crc32c(data) } });
    const signature = Buffer.from(res.signature as Uint8Array);
    assert.equal(res.name, name);
    assert.equal(res.verifiedDataCrc32c, true);
    assert.equal(res.signatureCrc32c?.value, String(crc32c(signature)));
    assert.equal(signature.length, 64);
    assert.equal(ed25519.verify(signature, data, rawPublicKey(pk.pem!)), true);
    // A digest is not what an Ed25519 key signs.
    assert.equal(await codeOf(client.asymmetricSign({ name, digest: { sha256: sha256(data) } })), grpc.status.INVALID_ARGUMENT);
  });

  it('should sign a given secp256k1 or P-256 digest as is, DER-encoded, with checksums that match', async () => {
    for (const [algorithm, level, curve] of [
      ['EC_SIGN_SECP256K1_SHA256', 'HSM', secp256k1],
      ['EC_SIGN_P256_SHA256', 'SOFTWARE', p256],
    ] as const) {
      const name = await createKey(algorithm, level);
      const [pk] = await client.getPublicKey({ name });
      const digest = sha256(Buffer.from(`payload for ${algorithm}`));
      const [res] = await client.asymmetricSign({ name, digest: { sha256: digest }, digestCrc32c: { value: crc32c(digest) } });
      const der = Buffer.from(res.signature as Uint8Array);
      assert.equal(res.verifiedDigestCrc32c, true);
      assert.equal(res.signatureCrc32c?.value, String(crc32c(der)));
      assert.equal(res.protectionLevel, level);
      // prehash false: the digest is the message hash itself; hashing it again would not verify.
      const sig = curve.Signature.fromDER(der).toCompactRawBytes();
      assert.equal(curve.verify(sig, digest, rawPublicKey(pk.pem!), { prehash: false, lowS: false }), true);
    }
  });

  it('should refuse a request whose CRC32C does not match what it carries', async () => {
    const ed = await createKey('EC_SIGN_ED25519');
    const data = Buffer.from('data');
    assert.equal(await codeOf(client.asymmetricSign({ name: ed, data, dataCrc32c: { value: crc32c(data) ^ 1 } })), grpc.status.INVALID_ARGUMENT);
    const k1 = await createKey('EC_SIGN_SECP256K1_SHA256', 'HSM');
    const digest = sha256(data);
    assert.equal(
      await codeOf(client.asymmetricSign({ name: k1, digest: { sha256: digest }, digestCrc32c: { value: crc32c(digest) ^ 1 } })),
      grpc.status.INVALID_ARGUMENT,
    );
    assert.equal(await codeOf(client.asymmetricSign({ name: k1, digest: { sha256: digest.subarray(0, 31) } })), grpc.status.INVALID_ARGUMENT);
  });

  it('should keep key rings, keys and versions across a restart with the same data directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kms-emulator-'));
    try {
      const first = await startKmsEmulator({ port: 0, dataDir, pendingMs: 0 });
      let c = clientFor(first);
      const [r] = await c.createKeyRing({ parent: LOCATION, keyRingId: 'persisted', keyRing: {} });
      const [key] = await c.createCryptoKey({
        parent: r.name,
        cryptoKeyId: 'eth',
        cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_SECP256K1_SHA256', protectionLevel: 'HSM' } },
      });
      const name = `${key.name}/cryptoKeyVersions/1`;
      const [before] = await c.getPublicKey({ name });
      await c.close();
      await first.stop();

      const second = await startKmsEmulator({ port: 0, dataDir });
      c = clientFor(second);
      try {
        const [after] = await c.getPublicKey({ name });
        assert.equal(after.pem, before.pem);
        const digest = sha256(Buffer.from('after restart'));
        const [res] = await c.asymmetricSign({ name, digest: { sha256: digest } });
        assert.equal(secp256k1.verify(Buffer.from(res.signature as Uint8Array), digest, rawPublicKey(after.pem!), { prehash: false, lowS: false }), true);
        assert.equal(await codeOf(c.createKeyRing({ parent: LOCATION, keyRingId: 'persisted', keyRing: {} })), grpc.status.ALREADY_EXISTS);
      } finally {
        await c.close();
        await second.stop();
      }
      // One file per resource, no temporary files left behind.
      const files = (await Promise.all(['keyRings', 'cryptoKeys', 'versions'].map((d) => readdir(join(dataDir, d))))).flat();
      assert.equal(files.length, 3);
      assert.ok(files.every((f) => f.endsWith('.json')));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('should run as a process that logs a NOT FOR PRODUCTION banner and stops cleanly on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'kms-emulator-main-'));
    const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
    const child = spawn(process.execPath, [main], {
      env: { ...process.env, KMS_EMULATOR_PORT: '0', KMS_EMULATOR_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const lines: Array<Record<string, unknown>> = [];
      for await (const line of createInterface({ input: child.stdout! })) {
        lines.push(JSON.parse(line) as Record<string, unknown>);
        if (lines.at(-1)!.msg === 'kms emulator listening') break;
      }
      assert.ok(lines.some((l) => String(l.msg).includes('NOT FOR PRODUCTION')));
      const endpoint = String(lines.at(-1)!.endpoint);
      const port = Number(endpoint.split(':').pop());
      const c = new KeyManagementServiceClient({
        apiEndpoint: '127.0.0.1',
        port,
        sslCreds: grpc.credentials.createInsecure(),
        universeDomain: 'googleapis.com',
      });
      await c.createKeyRing({ parent: LOCATION, keyRingId: 'from-process', keyRing: {} });
      await c.close();
      const [file] = await readdir(join(dataDir, 'keyRings'));
      assert.match(await readFile(join(dataDir, 'keyRings', file!), 'utf8'), /from-process/);
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
