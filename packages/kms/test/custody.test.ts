import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519';
import { secp256k1 } from '@noble/curves/secp256k1';
import { keccak_256 } from '@noble/hashes/sha3';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { createKmsCustody, toEthSignature, type KmsCustody, type KmsCustodyOptions } from '@wallet-fleet/kms';
import { startKmsEmulator, type KmsEmulator, type KmsEmulatorOptions } from '@wallet-fleet/kms-emulator';
import { createLogger } from '@wallet-fleet/service-kit';
import { waitFor } from '@wallet-fleet/testing';
import { Registry } from 'prom-client';

const N = secp256k1.CURVE.n;

// Independent of the package's own helper: keccak-256 of the uncompressed key without 0x04, last 20 bytes.
function addressOf(publicKey: Uint8Array): string {
  return `0x${Buffer.from(keccak_256(publicKey.subarray(1)).subarray(12)).toString('hex')}`;
}

async function rejection(p: Promise<unknown>): Promise<FleetError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FleetError, `expected a FleetError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = registry.getSingleMetric(name);
  if (!m) return undefined;
  const { values } = await m.get();
  const v = values.find((x) => Object.entries(labels).every(([k, want]) => String(x.labels[k]) === want));
  return v?.value;
}

describe('kms custody', () => {
  let dataDir: string;
  let emulator: KmsEmulator;
  let intercept: KmsEmulatorOptions['intercept'];
  const logLines: string[] = [];
  const custodies: KmsCustody[] = [];
  let suite = 0;

  // Each custody gets its own key ring and registry, so tests neither share keys nor metrics.
  function custody(overrides: Partial<KmsCustodyOptions> = {}): { custody: KmsCustody; registry: Registry } {
    const registry = new Registry();
    const c = createKmsCustody({
      projectId: 'test-project',
      locationId: 'global',
      keyRingId: `ring-${process.pid}-${++suite}`,
      apiEndpoint: emulator.endpoint,
      callTimeoutMs: 1000,
      maxRetries: 2,
      retryDelayMs: 5,
      logger: createLogger({ service: 'kms-test', level: 'debug', destination: { write: (line: string) => void logLines.push(line) } }),
      registry,
      breaker: { resetTimeoutMs: 100 },
      ...overrides,
    });
    custodies.push(c);
    return { custody: c, registry };
  }

  async function startEmulator(port = 0): Promise<KmsEmulator> {
    return startKmsEmulator({ port, dataDir, pendingMs: 30, intercept: (m, q, r) => (intercept ? intercept(m, q, r) : r) });
  }

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'kms-custody-'));
    emulator = await startEmulator();
  });

  afterEach(() => {
    intercept = undefined;
  });

  after(async () => {
    await Promise.all(custodies.map((c) => c.close()));
    await emulator.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('should create the key ring once and accept it existing already (also from a second instance)', async () => {
    const { custody: a } = custody();
    await a.ensureKeyRing();
    await a.ensureKeyRing();
    const b = createKmsCustody({
      projectId: 'test-project',
      locationId: 'global',
      keyRingId: `ring-${process.pid}-${suite}`,
      apiEndpoint: emulator.endpoint,
      logger: createLogger({ service: 'kms-test', level: 'silent' }),
      registry: new Registry(),
    });
    custodies.push(b);
    await b.ensureKeyRing();
    await b.check.check();
  });

  it('should fail its readiness check before the key ring exists with a message saying it is created at start, and pass after', async () => {
    const { custody: c } = custody();
    const err = await rejection(c.check.check());
    assert.equal(err.code, ErrorCode.NOT_FOUND);
    assert.match(err.message, /^key ring projects\/.+\/keyRings\/.+ does not exist \(yet: the service creates it when it starts\)$/);
    await c.ensureKeyRing();
    await c.check.check();
  });

  it('should create an Ed25519 key and return signatures that verify against its public key', async () => {
    const { custody: c } = custody();
    await c.ensureKeyRing();
    const key = await c.createKey('sol-wallet', 'ed25519');
    assert.match(key.keyVersionName, /\/cryptoKeys\/sol-wallet\/cryptoKeyVersions\/1$/);
    assert.equal(key.publicKey.length, 32);
    assert.deepEqual(await c.getPublicKey(key.keyVersionName, 'ed25519'), key.publicKey);
    for (const message of [Buffer.from('a solana transaction message'), randomBytes(1000), new Uint8Array(0)]) {
      const signature = await c.signEd25519(key.keyVersionName, message);
      assert.equal(signature.length, 64);
      assert.equal(ed25519.verify(signature, message, key.publicKey), true);
    }
  });

  it("should sign for a caller's record of the key only when the key version holds that very key", async () => {
    const { custody: c } = custody();
    await c.ensureKeyRing();
    const key = await c.createKey('sol-expected', 'ed25519');
    const other = await c.createKey('sol-other', 'ed25519');
    const message = Buffer.from('a solana transaction message');
    const signature = await c.signEd25519(key.keyVersionName, message, key.publicKey);
    assert.equal(ed25519.verify(signature, message, key.publicKey), true);
    const err = await rejection(c.signEd25519(key.keyVersionName, message, other.publicKey));
    assert.equal(err.code, ErrorCode.SIGNING_FAILED);
    assert.equal(err.retryable, false);
  });

  it('should create a secp256k1 key in HSM and return only low-s signatures that verify, over many random digests', async () => {
    const { custody: c } = custody();
    await c.ensureKeyRing();
    const key = await c.createKey('eth-wallet', 'secp256k1');
    assert.equal(key.publicKey.length, 65);
    assert.equal(key.publicKey[0], 4);
    for (let i = 0; i < 200; i++) {
      const digest = randomBytes(32);
      const { r, s } = await c.signSecp256k1Digest(key.keyVersionName, digest);
      assert.ok(s <= N / 2n, `high s for digest ${digest.toString('hex')}`);
      assert.ok(r > 0n && s > 0n);
      const compact = new secp256k1.Signature(r, s).toCompactRawBytes();
      assert.equal(secp256k1.verify(compact, digest, key.publicKey, { prehash: false, lowS: true }), true);
    }
  });

  it('should find the recovery id that yields the address derived from the public key', async () => {
    const { custody: c } = custody();
    await c.ensureKeyRing();
    const key = await c.createKey('eth-recover', 'secp256k1');
    const address = addressOf(key.publicKey);
    const parities = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const digest = keccak_256(randomBytes(64));
      const eth = await c.signEthereumDigest(key.keyVersionName, digest, address.toUpperCase().replace('0X', '0x'));
      parities.add(eth.yParity);
      const recovered = new secp256k1.Signature(eth.r, eth.s).addRecoveryBit(eth.yParity).recoverPublicKey(digest).toRawBytes(false);
      assert.equal(addressOf(recovered), address);
      // The pure helper agrees with the custody.
      assert.deepEqual(toEthSignature({ r: eth.r, s: eth.s }, digest, key.publicKey), eth);
    }
    assert.deepEqual([...parities].sort(), [0, 1], 'both recovery ids occur over 20 signatures');
    const wrong = await rejection(c.signEthereumDigest(key.keyVersionName, keccak_256(Buffer.from('x')), `0x${'11'.repeat(20)}`));
    assert.equal(wrong.code, ErrorCode.SIGNING_FAILED);
  });

  it('should turn any valid signature, high-s included, into a low-s Ethereum signature that recovers the signer', () => {
    const privateKey = secp256k1.utils.randomPrivateKey();
    const publicKey = secp256k1.getPublicKey(privateKey, false);
    let highS = 0;
    for (let i = 0; i < 40; i++) {
      const digest = keccak_256(randomBytes(32));
      const raw = secp256k1.sign(digest, privateKey, { lowS: false });
      if (raw.s > N / 2n) highS++;
      const eth = toEthSignature({ r: raw.r, s: raw.s }, digest, publicKey);
      assert.ok(eth.s <= N / 2n);
      const recovered = new secp256k1.Signature(eth.r, eth.s).addRecoveryBit(eth.yParity).recoverPublicKey(digest).toRawBytes(false);
      assert.equal(addressOf(recovered), addressOf(publicKey));
      // The compressed form of the key works as well.
      assert.deepEqual(toEthSignature(eth, digest, secp256k1.getPublicKey(privateKey, true)), eth);
    }
    assert.ok(highS > 0, 'some raw signatures were high-s');
    const other = secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), false);
    const digest = keccak_256(Buffer.from('x'));
    const raw = secp256k1.sign(digest, privateKey);
    assert.throws(
      () => toEthSignature({ r: raw.r, s: raw.s }, digest, other),
      (e: unknown) => e instanceof FleetError && e.code === ErrorCode.SIGNING_FAILED,
    );
  });

  it('should return the same key for a key id created twice and refuse it under another algorithm', async () => {
    const { custody: c } = custody();
    await c.ensureKeyRing();
    const [first, second] = await Promise.all([c.createKey('retry-me', 'ed25519'), c.createKey('retry-me', 'ed25519')]);
    const third = await c.createKey('retry-me', 'ed25519');
    assert.equal(second!.keyVersionName, first!.keyVersionName);
    assert.deepEqual(second!.publicKey, first!.publicKey);
    assert.deepEqual(third.publicKey, first!.publicKey);
    const signature = await c.signEd25519(third.keyVersionName, Buffer.from('still usable'));
    assert.equal(ed25519.verify(signature, Buffer.from('still usable'), first!.publicKey), true);
    const clash = await rejection(c.createKey('retry-me', 'secp256k1'));
    assert.equal(clash.code, ErrorCode.INTERNAL);
    assert.equal(clash.retryable, false);
  });

  it('should wait for a new key version to leave PENDING_GENERATION, and give up with UNAVAILABLE past the bound', async () => {
    const slow = await startKmsEmulator({ port: 0, pendingMs: 400 });
    try {
      const { custody: c } = custody({ apiEndpoint: slow.endpoint });
      await c.ensureKeyRing();
      // Signing right after createKey: a version still pending would answer FAILED_PRECONDITION.
      const key = await c.createKey('slow-key', 'ed25519');
      const signature = await c.signEd25519(key.keyVersionName, Buffer.from('right away'));
      assert.equal(ed25519.verify(signature, Buffer.from('right away'), key.publicKey), true);

      const { custody: impatient } = custody({ apiEndpoint: slow.endpoint, keyRingId: `ring-${process.pid}-${suite}`, enableTimeoutMs: 50 });
      const err = await rejection(impatient.createKey('slower-key', 'secp256k1'));
      assert.equal(err.code, ErrorCode.UNAVAILABLE);
      assert.equal(err.retryable, true);
      // The retry the caller makes later finds the key and reuses it.
      const again = await c.createKey('slower-key', 'secp256k1');
      assert.equal(again.publicKey.length, 65);
    } finally {
      await slow.stop();
    }
  });

  it('should answer NOT_FOUND for an unknown key version and count it in kms_errors_total', async () => {
    const { custody: c, registry } = custody();
    await c.ensureKeyRing();
    const missing = `projects/test-project/locations/global/keyRings/ring-${process.pid}-${suite}/cryptoKeys/none/cryptoKeyVersions/1`;
    const err = await rejection(c.signEd25519(missing, Buffer.from('x')));
    assert.equal(err.code, ErrorCode.NOT_FOUND);
    assert.equal(err.retryable, false);
    assert.equal(await metricValue(registry, 'kms_errors_total', { method: 'AsymmetricSign', code: 'NOT_FOUND' }), 1);
    const text = await registry.metrics();
    assert.match(text, /kms_request_duration_seconds_count\{method="GetKeyRing",outcome="success"\} 1/);
    // The refused sign is timed too, as an error (the histogram counts every logical call).
    assert.match(text, /kms_request_duration_seconds_count\{method="AsymmetricSign",outcome="error"\} 1/);
    // A "not found" is an answer, not an outage: the breaker stays closed.
    assert.equal(await metricValue(registry, 'breaker_state', { name: 'kms' }), 0);
    const badDigest = await rejection(c.signSecp256k1Digest(missing, new Uint8Array(31)));
    assert.equal(badDigest.code, ErrorCode.VALIDATION_FAILED);
  });

  it('should refuse responses that fail their integrity checks or signatures that do not verify', async () => {
    const { custody: c } = custody();
    await c.ensureKeyRing();
    const ed = await c.createKey('tamper-ed', 'ed25519');
    const k1 = await c.createKey('tamper-k1', 'secp256k1');

    intercept = (method, _req, res) => (method === 'AsymmetricSign' ? { ...res, signatureCrc32c: { value: '1' } } : res);
    let err = await rejection(c.signEd25519(ed.keyVersionName, Buffer.from('m')));
    assert.equal(err.code, ErrorCode.SIGNING_FAILED);
    assert.equal(err.retryable, true, 'a corrupted response is worth another try');

    intercept = (method, _req, res) => (method === 'AsymmetricSign' ? { ...res, verifiedDataCrc32c: false, verifiedDigestCrc32c: false } : res);
    err = await rejection(c.signSecp256k1Digest(k1.keyVersionName, randomBytes(32)));
    assert.equal(err.code, ErrorCode.SIGNING_FAILED);

    // A well-formed response (checksum recomputed) over a wrong signature: only local verification catches it.
    const { crc32c } = await import('@aws-crypto/crc32c');
    intercept = (method, _req, res) => {
      if (method !== 'AsymmetricSign') return res;
      const signature = Buffer.from(res.signature as Buffer);
      signature[10]! ^= 1;
      return { ...res, signature, signatureCrc32c: { value: String(crc32c(signature)) } };
    };
    err = await rejection(c.signEd25519(ed.keyVersionName, Buffer.from('m')));
    assert.equal(err.code, ErrorCode.SIGNING_FAILED);
    assert.equal(err.retryable, false);

    intercept = (method, _req, res) => (method === 'AsymmetricSign' ? { ...res, name: `${k1.keyVersionName.slice(0, -1)}2` } : res);
    err = await rejection(c.signSecp256k1Digest(k1.keyVersionName, randomBytes(32)));
    assert.equal(err.code, ErrorCode.SIGNING_FAILED);

    // A public key whose checksum does not match is refused, and the refusal is not cached.
    const fresh = custody({ keyRingId: `ring-${process.pid}-${suite}` }).custody;
    intercept = (method, _req, res) => (method === 'GetPublicKey' ? { ...res, pemCrc32c: { value: '7' } } : res);
    err = await rejection(fresh.getPublicKey(ed.keyVersionName, 'ed25519'));
    assert.equal(err.code, ErrorCode.SIGNING_FAILED);
    intercept = undefined;
    assert.deepEqual(await fresh.getPublicKey(ed.keyVersionName, 'ed25519'), ed.publicKey);
    // Asking for the wrong kind of key is refused too.
    assert.equal((await rejection(fresh.getPublicKey(ed.keyVersionName, 'secp256k1'))).code, ErrorCode.SIGNING_FAILED);
  });

  it('should fail with UNAVAILABLE within the configured budget when KMS accepts connections but never answers', async () => {
    const sockets = new Set<Socket>();
    const blackHole: Server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((resolve) => blackHole.listen(0, '127.0.0.1', resolve));
    const port = (blackHole.address() as { port: number }).port;
    try {
      const callTimeoutMs = 200;
      const maxRetries = 2;
      const { custody: c } = custody({ apiEndpoint: `127.0.0.1:${port}`, callTimeoutMs, maxRetries });
      const budget = callTimeoutMs * (maxRetries + 1);
      const started = Date.now();
      const err = await rejection(c.signEd25519('projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1', Buffer.from('m')));
      const elapsed = Date.now() - started;
      assert.equal(err.code, ErrorCode.UNAVAILABLE);
      assert.equal(err.retryable, true);
      assert.ok(elapsed < 3 * budget, `failed after ${elapsed} ms, budget ${budget} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => blackHole.close(resolve));
    }
  });

  it('should answer UNAVAILABLE and open the breaker while KMS is down, recover when it is back, and never leak private keys', async () => {
    const { custody: c, registry } = custody({ breaker: { resetTimeoutMs: 100, volumeThreshold: 3 } });
    await c.ensureKeyRing();
    const ed = await c.createKey('outage-ed', 'ed25519');
    const k1 = await c.createKey('outage-k1', 'secp256k1');
    const errors: unknown[] = [];
    const port = emulator.port;
    await emulator.stop();
    try {
      // The successes of the set-up are in the breaker's window too: fail until the error rate trips it.
      for (let i = 0; i < 30 && (await metricValue(registry, 'breaker_state', { name: 'kms' })) !== 2; i++) {
        const err = await rejection(i % 2 ? c.signEd25519(ed.keyVersionName, Buffer.from('m')) : c.signSecp256k1Digest(k1.keyVersionName, randomBytes(32)));
        errors.push(err);
        assert.equal(err.code, ErrorCode.UNAVAILABLE);
        assert.equal(err.retryable, true);
      }
      assert.equal(await metricValue(registry, 'breaker_state', { name: 'kms' }), 2, 'the breaker is open');
      const open = await rejection(c.signEd25519(ed.keyVersionName, Buffer.from('m')));
      errors.push(open);
      assert.equal(open.code, ErrorCode.UNAVAILABLE);
      assert.match(open.message, /circuit open/);
      errors.push(await rejection(c.check.check()));
      assert.ok((await metricValue(registry, 'kms_errors_total', { method: 'AsymmetricSign', code: 'UNAVAILABLE' }))! >= 2);
    } finally {
      emulator = await startEmulator(port);
    }
    // Same port, same data directory: the same keys answer again once the breaker lets a call through.
    const signature = await waitFor(() => c.signEd25519(ed.keyVersionName, Buffer.from('back')), { timeoutMs: 15_000, what: 'KMS to recover' });
    assert.equal(ed25519.verify(signature, Buffer.from('back'), ed.publicKey), true);
    await c.check.check();
    assert.equal(await metricValue(registry, 'breaker_state', { name: 'kms' }), 0);

    // Nothing that left the custody (errors with their causes, log lines) carries a private key.
    const secrets: string[] = [];
    for (const file of await readdir(join(dataDir, 'versions'))) {
      const { privateKeyHex } = JSON.parse(await readFile(join(dataDir, 'versions', file), 'utf8')) as { privateKeyHex: string };
      const raw = Buffer.from(privateKeyHex, 'hex');
      secrets.push(privateKeyHex.toLowerCase(), privateKeyHex.toUpperCase(), raw.toString('base64'), raw.toString('base64url'));
    }
    assert.ok(secrets.length >= 8);
    const seen = [...errors.flatMap((e) => [String(e), (e as Error).stack ?? '', JSON.stringify(e), String((e as Error).cause)]), ...logLines].join('\n');
    assert.ok(logLines.length > 0);
    for (const secret of secrets) assert.equal(seen.includes(secret), false, 'a private key appeared in an error or a log line');
  });
});
