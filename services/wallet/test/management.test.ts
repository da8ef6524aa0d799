import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, type Wallet, isFleetError } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { createSchemaName, createFleetVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import type { ChannelModel } from 'amqplib';
import { caller, startWalletService, type WalletService, watchWalletEvents } from './support.js';

describe('wallet management over RabbitMQ (KMS emulator)', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let kmsDir: string;
  let services: Array<WalletService>;
  let client: Broker;
  let events: ChannelModel;
  const seen: Array<{ routingKey: string; body: any }> = [];

  async function startWallet(kmsEndpoint: string, overrides: Record<string, string> = {}) {
    const s = await startWalletService(vhost, schema, {
      KMS_ENDPOINT: kmsEndpoint,
      KMS_CALL_TIMEOUT_MS: '500',
      // Every create here talks to KMS itself; creates from the key pool: key-pool.test.ts.
      KEY_POOL_SIZE: '0',
      ...overrides,
    });
    services.push(s);
    return s;
  }

  beforeEach(async () => {
    vhost = await createFleetVhost('wallet');
    schema = await createSchemaName('wallet');
    // On disk, as the fleet runs it: a restarted emulator still has the key ring and the keys.
    kmsDir = mkdtempSync(join(tmpdir(), 'kms-'));
    kms = await startKmsEmulator({ port: 0, dataDir: kmsDir });
    services = [];
    // Everything the service publishes on wallet.events, as another team would see it.
    seen.length = 0;
    events = await watchWalletEvents(vhost, ['wallet.created', 'audit.wallet.#'], (m) =>
      seen.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }),
    );
    await startWallet(kms.endpoint);
    client = await caller(vhost, 'backend');
  });

  afterEach(async () => {
    await client?.stop();
    for (const s of services) await s.stop();
    await events?.close();
    await kms?.stop();
    rmSync(kmsDir, { recursive: true, force: true });
    await vhost?.drop();
    await schema?.drop();
  });

  it('should create wallets on every chain with chain-shaped addresses, the first one active', async () => {
    const userId = `u-${randomUUID()}`;
    const sol = await client.request('wallet.management.create', { userId, chain: 'SOL', label: 'main' });
    const eth = await client.request('wallet.management.create', { userId, chain: 'ETH' });
    const apt = await client.request('wallet.management.create', { userId, chain: 'APTOS' });
    const sol2 = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    assert.match(sol.address, /^[1-9A-HJ-NP-Za-km-z]{32,44}$/);
    assert.match(eth.address, /^0x[0-9a-fA-F]{40}$/);
    assert.notEqual(eth.address, eth.address.toLowerCase(), 'EIP-55 checksum casing');
    assert.match(apt.address, /^0x[0-9a-f]{64}$/);
    assert.deepEqual([sol.isActive, eth.isActive, apt.isActive, sol2.isActive], [true, true, true, false]);
    assert.equal(sol.label, 'main');

    const list = await client.request('wallet.management.list', { userId });
    assert.deepEqual(list.items.map((w) => w.walletId).sort(), [sol, eth, apt, sol2].map((w) => w.walletId).sort());
    const onlySol = await client.request('wallet.management.list', { userId, chain: 'SOL' });
    assert.equal(onlySol.items.length, 2);

    const switched = await client.request('wallet.management.setActive', { userId, walletId: sol2.walletId });
    assert.equal(switched.isActive, true);
    const again = await client.request('wallet.management.get', { userId, walletId: sol.walletId });
    assert.equal(again.isActive, false);

    await waitFor(() => seen.filter((e) => e.routingKey === 'wallet.created').length === 4, { what: '4 wallet.created events' });
    await waitFor(() => seen.some((e) => e.routingKey === 'audit.wallet.setActive'), { what: 'the setActive audit event' });
    const audit = seen.find((e) => e.routingKey === 'audit.wallet.setActive')!.body;
    assert.deepEqual([audit.before, audit.after], [{ activeWalletId: sol.walletId }, { activeWalletId: sol2.walletId }]);
    assert.equal(seen.filter((e) => e.routingKey === 'audit.wallet.create').length, 4);
  });

  it('should create one wallet for one idempotency key, however many replicas race on it', async () => {
    await startWallet(kms.endpoint);
    const userId = `u-${randomUUID()}`;
    const req = { userId, chain: 'ETH' as const, idempotencyKey: 'signup-1' };
    const results = await Promise.all(Array.from({ length: 8 }, () => client.request('wallet.management.create', req)));
    assert.equal(new Set(results.map((w) => w.walletId)).size, 1);
    assert.equal(new Set(results.map((w) => w.address)).size, 1);
    const list = await client.request('wallet.management.list', { userId });
    assert.equal(list.items.length, 1);
    await assert.rejects(client.request('wallet.management.create', { ...req, chain: 'SOL' }), (e) => isFleetError(e, ErrorCode.IDEMPOTENCY_CONFLICT));
  });

  it("should answer WALLET_NOT_FOUND for another user's wallet exactly as for a missing one", async () => {
    const alice = await client.request('wallet.management.create', { userId: 'alice', chain: 'SOL' });
    const errors: unknown[] = [];
    for (const walletId of [alice.walletId, randomUUID()]) {
      for (const op of ['wallet.management.get', 'wallet.management.setActive'] as const) {
        errors.push(await client.request(op, { userId: 'mallory', walletId }).catch((e) => e));
      }
    }
    for (const e of errors) {
      assert.ok(isFleetError(e, ErrorCode.WALLET_NOT_FOUND), String(e));
      assert.equal((e as Error).message, 'wallet not found');
    }
    await assert.rejects(client.request('wallet.management.create', { userId: 'alice', chain: 'DOGE' as never }), (e) =>
      isFleetError(e, ErrorCode.VALIDATION_FAILED),
    );
  });

  it('should answer UNAVAILABLE within the deadline when KMS is down, report not ready, and recover', async () => {
    const http = services[0]!;
    await kms.stop();
    const started = Date.now();
    const err = await client.request('wallet.management.create', { userId: 'bob', chain: 'SOL' }, { timeoutMs: 20_000 }).catch((e) => e);
    assert.ok(isFleetError(err, ErrorCode.UNAVAILABLE), String(err));
    assert.ok(err.retryable);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    const ready = await fetch(`http://127.0.0.1:${http.port()}/ready`);
    assert.equal(ready.status, 503);
    assert.match(JSON.stringify(await ready.json()), /kms/);

    kms = await startKmsEmulator({ port: kms.port, dataDir: kmsDir });
    const w: Wallet = await waitFor(() => client.request('wallet.management.create', { userId: 'bob', chain: 'SOL' }).catch(() => undefined), {
      timeoutMs: 30_000,
      intervalMs: 250,
      what: 'a create after KMS returned',
    });
    assert.equal(w.userId, 'bob');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${http.port()}/ready`)).status === 200, { timeoutMs: 30_000, what: 'ready again' });
  });
});
