import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Transaction, PublicKey, SystemProgram } from '@solana/web3.js';
import { solanaAddress } from '@wallet-fleet/chains';
import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import pg from 'pg';
import { caller, startWalletService, type WalletService, watchWalletEvents } from './support.js';

interface PoolRow {
  kms_key_version: string;
  algorithm: string;
  protection_level: string;
  public_key: Buffer;
  wallet_id: string | null;
  created_at: Date;
}

describe('wallet creation from the key pool (KMS emulator, PostgreSQL, Redis)', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let services: Array<WalletService>;
  let client: Broker;
  let db: pg.Pool;
  // What the service asked of KMS, as the emulator saw it.
  let kmsCalls: Array<{ method: string; request: Record<string, any> }>;

  async function startWallet(overrides: Record<string, string>) {
    const s = await startWalletService(vhost, schema, { KMS_ENDPOINT: kms.endpoint, KEY_POOL_REFILL_INTERVAL_MS: '50', ...overrides });
    services.push(s);
    return s;
  }

  const poolRows = async () => (await db.query<PoolRow>(`SELECT * FROM "${schema.schema}".key_pool ORDER BY created_at`)).rows;
  const unassigned = async (algorithm: string) => (await poolRows()).filter((r) => r.algorithm === algorithm && r.wallet_id === null);
  const walletRow = async (walletId: string) =>
    (await db.query<{ kms_key_version: string; public_key: Buffer }>(`SELECT * FROM "${schema.schema}".wallets WHERE wallet_id = $1`, [walletId])).rows[0]!;

  async function metric(s: WalletService, line: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${s.port()}/metrics`)).text();
    const found = text.split('\n').find((l) => l.startsWith(`${line} `) || l.startsWith(`${line.replace('}', ',')}`));
    return found ? Number(found.split(' ').at(-1)) : 0;
  }

  beforeEach(async () => {
    vhost = await createFleetVhost('wallet');
    schema = await createSchemaName('wallet');
    kmsCalls = [];
    kms = await startKmsEmulator({
      port: 0,
      intercept: (method, request, response) => {
        kmsCalls.push({ method, request });
        return response;
      },
    });
    services = [];
    db = new pg.Pool({ connectionString: (await backingServices()).databaseUrl, max: 2 });
    client = await caller(vhost, 'backend');
  });

  afterEach(async () => {
    await client?.stop();
    for (const s of services) await s.stop();
    await kms?.stop();
    await db?.end();
    await vhost?.drop();
    await schema?.drop();
  });

  it('should give a new wallet a ready key of the pool, labelled as a pool key and left unchanged, and refill the pool', async () => {
    const wallet = await startWallet({ KEY_POOL_SIZE: '3' });
    const ready = await waitFor(async () => ((await unassigned('ed25519')).length === 3 ? unassigned('ed25519') : undefined), {
      what: '3 pooled Ed25519 keys',
    });
    await waitFor(async () => (await unassigned('secp256k1')).length === 3, { what: '3 pooled secp256k1 keys' });
    const creates = kmsCalls.filter((c) => c.method === 'CreateCryptoKey');
    assert.equal(creates.length, 6);
    for (const c of creates) {
      assert.match(c.request.cryptoKeyId, /^pool-/);
      assert.equal(c.request.cryptoKey.labels['managed-by'], 'wallet-fleet');
      assert.match(c.request.cryptoKey.labels['wallet-fleet-pool'], /^(ed25519-software|secp256k1-hsm)$/);
    }
    const callsBefore = kmsCalls.length;

    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    const row = await walletRow(w.walletId);
    const taken = ready.find((k) => k.kms_key_version === row.kms_key_version);
    assert.ok(taken, 'the wallet holds one of the pooled keys');
    assert.equal(w.address, solanaAddress(new Uint8Array(taken.public_key)));
    assert.equal((await poolRows()).find((k) => k.kms_key_version === taken.kms_key_version)!.wallet_id, w.walletId);
    // Assigning a key is a database write only: KMS hears nothing about the key taken.
    const keyName = taken.kms_key_version.replace(/\/cryptoKeyVersions\/.*$/, '');
    assert.deepEqual(
      kmsCalls.slice(callsBefore).filter((c) => JSON.stringify(c.request).includes(keyName)),
      [],
    );
    assert.ok(!kmsCalls.some((c) => c.method === 'UpdateCryptoKey'));

    // The pooled key signs for the wallet's address.
    const tx = new Transaction({ feePayer: new PublicKey(w.address), recentBlockhash: '11111111111111111111111111111111' })
      .add(SystemProgram.transfer({ fromPubkey: new PublicKey(w.address), toPubkey: new PublicKey(w.address), lamports: 1 }))
      .serialize({ requireAllSignatures: false, verifySignatures: false })
      .toString('base64');
    const { signedTransaction } = await client.request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: tx });
    assert.ok(Transaction.from(Buffer.from(signedTransaction, 'base64')).verifySignatures());

    await waitFor(async () => (await unassigned('ed25519')).length === 3, { what: 'the pool refilled to 3' });
    assert.equal(await metric(wallet, 'wallet_key_pool_empty_total{algorithm="ed25519",protection_level="SOFTWARE"}'), 0);
  });

  it('should publish wallet.created and its audit event for each create from the pool, as the reply says, and answer a repeat from its record', async () => {
    await startWallet({ KEY_POOL_SIZE: '4' });
    await waitFor(async () => (await unassigned('ed25519')).length === 4, { what: '4 pooled keys' });
    const seen: Array<{ routingKey: string; body: any }> = [];
    const events = await watchWalletEvents(vhost, ['wallet.created', 'audit.wallet.create'], (m) =>
      seen.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }),
    );
    try {
      const userId = `u-${randomUUID()}`;
      const first = await client.request('wallet.management.create', { userId, chain: 'SOL', label: 'main', idempotencyKey: 'first' });
      const second = await client.request('wallet.management.create', { userId, chain: 'SOL' });
      assert.deepEqual([first.isActive, second.isActive], [true, false]);
      // The events are those of the wallets as stored and answered: active flag, time, address.
      await waitFor(() => seen.filter((e) => e.routingKey === 'wallet.created').length === 2, { what: '2 wallet.created events' });
      await waitFor(() => seen.filter((e) => e.routingKey === 'audit.wallet.create').length === 2, { what: '2 audit events' });
      for (const w of [first, second]) {
        assert.deepEqual(seen.find((e) => e.routingKey === 'wallet.created' && e.body.walletId === w.walletId)!.body, w);
        const audit = seen.find((e) => e.routingKey === 'audit.wallet.create' && e.body.resource.id === w.walletId)!.body;
        assert.deepEqual(audit.after, { chain: 'SOL', address: w.address, isActive: w.isActive, label: w.label });
      }
      assert.deepEqual((await client.request('wallet.management.get', { userId, walletId: first.walletId })).createdAt, first.createdAt);

      // A repeat is answered from the record and takes no key; another payload under the key is refused.
      const again = await client.request('wallet.management.create', { userId, chain: 'SOL', label: 'main', idempotencyKey: 'first' });
      assert.deepEqual(again, first);
      await assert.rejects(client.request('wallet.management.create', { userId, chain: 'APTOS', idempotencyKey: 'first' }), (e) =>
        isFleetError(e, ErrorCode.IDEMPOTENCY_CONFLICT),
      );
      assert.equal((await poolRows()).filter((k) => k.algorithm === 'ed25519' && k.wallet_id !== null).length, 2);
      assert.equal((await client.request('wallet.management.list', { userId })).items.length, 2);
      assert.equal(seen.filter((e) => e.routingKey === 'wallet.created').length, 2);
    } finally {
      await events.close();
    }
  });

  it('should create the key synchronously when the pool is empty, count it and never fail for it', async () => {
    // One key per minute: the refiller creates one and then has to wait.
    const wallet = await startWallet({ KEY_POOL_SIZE: '5', KEY_POOL_CREATES_PER_WINDOW: '1' });
    await waitFor(async () => (await unassigned('ed25519')).length === 1, { what: 'one pooled key' });
    const userId = `u-${randomUUID()}`;
    const first = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    const second = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    const eth = await client.request('wallet.management.create', { userId, chain: 'ETH' });
    assert.match((await walletRow(first.walletId)).kms_key_version, /\/cryptoKeys\/pool-/);
    assert.match((await walletRow(second.walletId)).kms_key_version, new RegExp(`/cryptoKeys/wallet-${second.walletId}/`));
    assert.match((await walletRow(eth.walletId)).kms_key_version, new RegExp(`/cryptoKeys/wallet-${eth.walletId}/`));
    assert.equal(await metric(wallet, 'wallet_key_pool_empty_total{algorithm="ed25519",protection_level="SOFTWARE"}'), 1);
    assert.equal(await metric(wallet, 'wallet_key_pool_empty_total{algorithm="secp256k1",protection_level="HSM"}'), 1);
    // Still one pool key in all: the limiter's window has not freed a slot.
    assert.equal((await poolRows()).length, 1);
  });

  it('should never give one key to two wallets, however many creates race on two replicas', async () => {
    // Exactly 8 keys in the pool (the limiter allows no more this minute), then 24 creates at once.
    const overrides = { KEY_POOL_SIZE: '8', KEY_POOL_CREATES_PER_WINDOW: '8' };
    const a = await startWallet(overrides);
    const b = await startWallet(overrides);
    await waitFor(async () => (await unassigned('ed25519')).length === 8, { what: '8 pooled keys' });
    const wallets = await Promise.all(
      Array.from({ length: 24 }, () => client.request('wallet.management.create', { userId: `u-${randomUUID()}`, chain: 'SOL' })),
    );
    const keys = await Promise.all(wallets.map(async (w) => (await walletRow(w.walletId)).kms_key_version));
    assert.equal(new Set(keys).size, 24);
    assert.equal(new Set(wallets.map((w) => w.address)).size, 24);
    const pool = await poolRows();
    assert.equal(pool.length, 8);
    for (const k of pool) {
      assert.ok(k.wallet_id, 'every pooled key was taken');
      assert.equal(keys[wallets.findIndex((w) => w.walletId === k.wallet_id)], k.kms_key_version, 'by the wallet that holds it');
    }
    const empty = 'wallet_key_pool_empty_total{algorithm="ed25519",protection_level="SOFTWARE"}';
    assert.equal((await metric(a, empty)) + (await metric(b, empty)), 16);
  });

  it('should refill no faster than its fleet-wide rate, across replicas', async () => {
    // 2 keys per 1.5 s window, 6 wanted per kind, two replicas refilling.
    const overrides = { KEY_POOL_SIZE: '3', KEY_POOL_CREATES_PER_WINDOW: '2', KEY_POOL_RATE_WINDOW_MS: '1500', KEY_POOL_REFILL_CONCURRENCY: '4' };
    await startWallet(overrides);
    await startWallet(overrides);
    const rows = await waitFor(async () => ((await poolRows()).length >= 6 ? poolRows() : undefined), { timeoutMs: 20_000, what: '6 pooled keys' });
    const times = rows.map((r) => r.created_at.getTime()).sort((x, y) => x - y);
    // Any 3 consecutive keys span more than a window, less the time one key takes to create (the
    // limiter counts when a creation starts, the row records when it ended).
    for (let i = 0; i + 2 < times.length; i++) assert.ok(times[i + 2]! - times[i]! > 1000, `keys ${i}..${i + 2} within ${times[i + 2]! - times[i]!} ms`);
    assert.equal(kmsCalls.filter((c) => c.method === 'CreateCryptoKey').length, rows.length, 'no key created beyond the recorded ones');
  });

  it('should create wallets from the pool while KMS is down', async () => {
    await startWallet({ KEY_POOL_SIZE: '2', KMS_CALL_TIMEOUT_MS: '300' });
    await waitFor(async () => (await unassigned('ed25519')).length === 2, { what: '2 pooled keys' });
    await kms.stop();
    const w = await client.request('wallet.management.create', { userId: `u-${randomUUID()}`, chain: 'SOL' });
    assert.match((await walletRow(w.walletId)).kms_key_version, /\/cryptoKeys\/pool-/);
  });

  it('should put a key back into the pool when the transaction that took it rolls back', async () => {
    // Two replicas race on one idempotent create: each takes a key, one commits, the other's
    // transaction rolls back on the duplicate and its key must be unassigned again.
    const overrides = { KEY_POOL_SIZE: '4', KEY_POOL_CREATES_PER_WINDOW: '4' };
    await startWallet(overrides);
    await startWallet(overrides);
    await waitFor(async () => (await unassigned('ed25519')).length === 4, { what: '4 pooled keys' });
    const req = { userId: `u-${randomUUID()}`, chain: 'SOL' as const, idempotencyKey: 'signup' };
    const results = await Promise.all(Array.from({ length: 8 }, () => client.request('wallet.management.create', req)));
    assert.equal(new Set(results.map((w) => w.walletId)).size, 1);
    const pool = await poolRows();
    assert.deepEqual(
      pool.filter((k) => k.wallet_id).map((k) => k.wallet_id),
      [results[0]!.walletId],
    );
    assert.equal(pool.filter((k) => k.wallet_id === null).length, 3);
    // The keys given back are usable by the next creates.
    const next = await Promise.all([1, 2, 3].map(() => client.request('wallet.management.create', { userId: `u-${randomUUID()}`, chain: 'APTOS' })));
    assert.equal((await poolRows()).filter((k) => k.wallet_id === null).length, 0);
    assert.equal(next.length, 3);
  });
});
