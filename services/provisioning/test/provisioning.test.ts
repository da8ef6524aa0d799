import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type Chain, ErrorCode, type ResultOf } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, createFleetVhost, rabbitAdmin, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { caller, startWalletService, type WalletService } from '../../wallet/test/support.js';
import { createProvisioningService } from '../src/app.js';
import { loadProvisioningConfig } from '../src/config.js';

const silent = createLogger({ service: 'test', level: 'silent' });
const CHAINS: Chain[] = ['SOL', 'ETH', 'APTOS'];
type Status = ResultOf<'wallet.provisioning.status'>;

describe('provisioning over RabbitMQ with the real wallet service (KMS emulator)', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let walletSchema: TestSchema;
  let provSchema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let wallets: Array<WalletService>;
  let provs: Array<ReturnType<typeof createProvisioningService>>;
  let client: Broker;
  let events: amqp.ChannelModel;
  const seen: Array<{ routingKey: string; body: any }> = [];

  async function startWallet() {
    const s = await startWalletService(vhost, walletSchema, { KMS_ENDPOINT: kms.endpoint, KMS_CALL_TIMEOUT_MS: '2000' });
    wallets.push(s);
    return s;
  }

  async function startProvisioning(overrides: Record<string, string> = {}) {
    const s = createProvisioningService(
      loadProvisioningConfig({
        AMQP_URL: vhost.as('provisioning'),
        ...provSchema.env,
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        PROVISIONING_RETRY_MAX_ATTEMPTS: '4',
        PROVISIONING_RETRY_INITIAL_DELAY_MS: '50',
        PROVISIONING_RETRY_MAX_DELAY_MS: '400',
        // Generous: a first KMS key can take a while; the outage tests shorten it.
        PROVISIONING_WALLET_TIMEOUT_MS: '5000',
        PROVISIONING_BREAKER_RESET_MS: '200',
        PROVISIONING_BREAKER_VOLUME: '2',
        PROVISIONING_BREAKER_WAIT_MS: '100',
        ...overrides,
      }),
      silent,
    );
    await s.start();
    provs.push(s);
    return s;
  }

  const status = (userId: string): Promise<Status> => client.request('wallet.provisioning.status', { userId });
  const allReady = async (userId: string, chains = CHAINS) => {
    const s = await status(userId);
    return s.chains.length === chains.length && s.chains.every((c) => c.status === 'READY') ? s : undefined;
  };
  const approve = (userId: string, chains?: Chain[]) => client.publishEvent('kyc.approved', { userId, ...(chains ? { chains } : {}) });
  const eventsOf = (key: string, userId?: string) => seen.filter((e) => e.routingKey === key && (!userId || e.body.userId === userId));

  beforeEach(async () => {
    vhost = await createFleetVhost('prov');
    walletSchema = await createSchemaName('wallet');
    provSchema = await createSchemaName('prov');
    kms = await startKmsEmulator({ port: 0 });
    wallets = [];
    provs = [];
    // Everything provisioning publishes on wallet.events, as another team would see it.
    events = await amqp.connect(vhost.url);
    const ch = await events.createChannel();
    await ch.assertExchange('wallet.events', 'topic', { durable: true });
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'wallet.events', 'wallet.provisioning.*');
    await ch.bindQueue(q.queue, 'wallet.events', 'audit.provisioning.#');
    seen.length = 0;
    await ch.consume(q.queue, (m) => m && seen.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }), { noAck: true });
    // The product's backend: approves KYC, asks for status and wallets.
    client = await caller(vhost, 'backend');
  });

  afterEach(async () => {
    await client?.stop();
    for (const s of provs) await s.stop();
    for (const s of wallets) await s.stop();
    await events?.close();
    await kms?.stop();
    await vhost?.drop();
    await walletSchema?.drop();
    await provSchema?.drop();
  });

  it('should give an approved user one wallet per chain, READY status, one completed event and an audit trail', async () => {
    await startWallet();
    await startProvisioning();
    const userId = `u-${randomUUID()}`;
    await approve(userId);
    const done = await waitFor(() => allReady(userId), { what: 'all chains READY' });

    const list = await client.request('wallet.management.list', { userId });
    assert.equal(list.items.length, 3);
    const byChain = Object.fromEntries(list.items.map((w) => [w.chain, w]));
    assert.match(byChain.SOL!.address, /^[1-9A-HJ-NP-Za-km-z]{32,44}$/);
    assert.match(byChain.ETH!.address, /^0x[0-9a-fA-F]{40}$/);
    assert.match(byChain.APTOS!.address, /^0x[0-9a-f]{64}$/);
    for (const c of done.chains) {
      assert.equal(c.address, byChain[c.chain]!.address);
      assert.equal(c.walletId, byChain[c.chain]!.walletId);
      assert.equal(c.attempts, 1);
      assert.equal(c.lastError, null);
    }

    await waitFor(() => eventsOf('wallet.provisioning.completed', userId).length === 1, { what: 'the completed event' });
    const completed = eventsOf('wallet.provisioning.completed', userId)[0]!.body;
    assert.deepEqual(
      [...completed.wallets].sort((a: any, b: any) => a.chain.localeCompare(b.chain)),
      list.items.map((w) => ({ chain: w.chain, walletId: w.walletId, address: w.address })).sort((a, b) => a.chain.localeCompare(b.chain)),
    );
    await waitFor(() => eventsOf('audit.provisioning.chain', userId).length === 3, { what: 'three attempt audit events' });
    for (const chain of CHAINS) {
      const a = eventsOf('audit.provisioning.chain', userId).find((e) => e.body.resource.id === `${userId}:${chain}`)!.body;
      assert.equal(a.actor.id, 'provisioning');
      assert.equal(a.status, 'success');
      assert.deepEqual([a.before.status, a.after.status, a.after.address], ['PENDING', 'READY', byChain[chain]!.address]);
    }
    assert.equal(eventsOf('audit.provisioning.requested', userId).length, 3);

    // A later duplicate approval changes nothing and completes nothing again.
    await approve(userId);
    const again = await client.request('wallet.provisioning.provision', { userId });
    assert.deepEqual(
      again.chains.map((c) => c.status),
      ['READY', 'READY', 'READY'],
    );
    assert.equal((await client.request('wallet.management.list', { userId })).items.length, 3);
    assert.equal(eventsOf('wallet.provisioning.completed', userId).length, 1);
  });

  it('should retry while the wallet service is down and finish when it returns', async () => {
    const w = await startWallet();
    await startProvisioning({ PROVISIONING_WALLET_TIMEOUT_MS: '300', PROVISIONING_RETRY_MAX_ATTEMPTS: '10' });
    await w.stop();
    const userId = `u-${randomUUID()}`;
    await approve(userId);
    // Failed attempts are recorded while the chains stay PENDING.
    await waitFor(async () => (await status(userId)).chains.some((c) => c.status === 'PENDING' && c.attempts >= 1 && c.lastError?.code === ErrorCode.TIMEOUT), {
      what: 'a failed attempt recorded',
    });
    await waitFor(() => eventsOf('audit.provisioning.chain', userId).some((e) => e.body.status === 'retry_scheduled'), {
      what: 'a retry_scheduled audit event',
    });
    await startWallet();
    const done = await waitFor(() => allReady(userId), { timeoutMs: 30_000, what: 'all chains READY after the wallet service returned' });
    assert.ok(
      done.chains.some((c) => c.attempts >= 2),
      JSON.stringify(done.chains),
    );
    assert.equal((await client.request('wallet.management.list', { userId })).items.length, 3);
    await waitFor(() => eventsOf('wallet.provisioning.completed', userId).length === 1, { what: 'the completed event' });
    assert.equal(eventsOf('wallet.provisioning.failed', userId).length, 0);
  });

  it('should fail a chain at once on a permanent error, keep the others READY, and dead-letter its job', async () => {
    await startWallet();
    const prov = await startProvisioning();
    const userId = `u-${randomUUID()}`;
    // Someone used provisioning's idempotency key for ETH with another payload: the wallet service
    // answers IDEMPOTENCY_CONFLICT, which no retry can fix.
    await client.request('wallet.management.create', { userId, chain: 'SOL', idempotencyKey: `provisioning:${userId}:ETH` });
    await approve(userId);
    const s = await waitFor(
      async () => {
        const st = await status(userId);
        return st.chains.length === 3 && st.chains.every((c) => c.status !== 'PENDING') ? st : undefined;
      },
      { what: 'every chain settled' },
    );
    const eth = s.chains.find((c) => c.chain === 'ETH')!;
    assert.deepEqual([eth.status, eth.attempts, eth.lastError?.code], ['FAILED', 1, ErrorCode.IDEMPOTENCY_CONFLICT]);
    assert.deepEqual(
      s.chains.filter((c) => c.chain !== 'ETH').map((c) => c.status),
      ['READY', 'READY'],
    );
    await waitFor(() => eventsOf('wallet.provisioning.failed', userId).length === 1, { what: 'the failed event' });
    assert.deepEqual(eventsOf('wallet.provisioning.failed', userId)[0]!.body, {
      userId,
      chain: 'ETH',
      attempts: 1,
      error: { code: ErrorCode.IDEMPOTENCY_CONFLICT, message: eth.lastError!.message },
    });
    const dlq = await waitFor(
      async () => {
        const msgs = await rabbitAdmin.drain(vhost.vhost, 'provisioning.chains.dlq');
        return msgs.length ? msgs : undefined;
      },
      { what: 'the job in the DLQ' },
    );
    assert.equal(dlq.length, 1);
    assert.equal(dlq[0]!.properties.headers?.['x-death-reason'], 'non_retryable');
    assert.equal(eventsOf('wallet.provisioning.completed', userId).length, 0);
    const metrics = await (await fetch(`http://127.0.0.1:${prov.port()}/metrics`)).text();
    assert.match(metrics, /provisioning_dead_lettered_total\{chain="ETH"[^}]*\} 1\n/);
  });

  it('should dead-letter, emit failed and mark FAILED when the wallet service never comes back', async () => {
    const w = await startWallet();
    const prov = await startProvisioning({ PROVISIONING_RETRY_MAX_ATTEMPTS: '3', PROVISIONING_WALLET_TIMEOUT_MS: '300' });
    await w.stop();
    const userId = `u-${randomUUID()}`;
    await approve(userId);
    const s = await waitFor(
      async () => {
        const st = await status(userId);
        return st.chains.length === 3 && st.chains.every((c) => c.status === 'FAILED') ? st : undefined;
      },
      { timeoutMs: 30_000, what: 'every chain FAILED' },
    );
    for (const c of s.chains) assert.deepEqual([c.attempts, c.lastError?.code], [3, ErrorCode.TIMEOUT]);
    await waitFor(() => eventsOf('wallet.provisioning.failed', userId).length === 3, { what: 'three failed events' });
    await waitFor(async () => (await rabbitAdmin.queue(vhost.vhost, 'provisioning.chains.dlq')).messages === 3, { what: 'three dead letters' });
    const dead = await rabbitAdmin.drain(vhost.vhost, 'provisioning.chains.dlq');
    assert.deepEqual(
      dead.map((m) => m.properties.headers?.['x-death-reason']),
      ['attempts_exhausted', 'attempts_exhausted', 'attempts_exhausted'],
    );
    // The broker's retry history travels with the job: three real attempts, none for the parked waits.
    for (const m of dead) {
      const history = JSON.parse(String(m.properties.headers?.['x-error-history'])) as Array<{ attempt: number; code: string }>;
      assert.deepEqual(
        history.map((h) => [h.attempt, h.code]),
        [
          [1, 'TIMEOUT'],
          [2, 'TIMEOUT'],
          [3, 'TIMEOUT'],
        ],
      );
    }
    const metrics = await (await fetch(`http://127.0.0.1:${prov.port()}/metrics`)).text();
    for (const chain of CHAINS) assert.match(metrics, new RegExp(`provisioning_dead_lettered_total\\{chain="${chain}"[^}]*\\} 1\\n`));
    // The breaker opened during the outage: jobs were parked without using up attempts (each chain
    // still shows exactly 3 attempts above).
    const waiting = Number(/provisioning_jobs_processed_total\{status="waiting"[^}]*\} (\d+)/.exec(metrics)?.[1]);
    assert.ok(waiting > 0, `parked jobs: ${waiting}`);
    const audit = () => eventsOf('audit.provisioning.chain', userId);
    await waitFor(() => audit().filter((e) => e.body.status === 'dead_lettered').length === 3, { what: 'three dead_lettered audit events' });
    assert.equal(audit().filter((e) => e.body.status === 'retry_scheduled').length, 6);

    // The admin trigger sends FAILED chains round again once the wallet service is back.
    await startWallet();
    const again = await client.request('wallet.provisioning.provision', { userId });
    assert.ok(again.chains.every((c) => c.status === 'PENDING' && c.attempts === 0));
    await waitFor(() => allReady(userId), { timeoutMs: 30_000, what: 'READY after the re-trigger' });
    await waitFor(() => eventsOf('wallet.provisioning.completed', userId).length === 1, { what: 'the completed event' });
  });

  it('should create exactly one wallet per chain for duplicated and concurrent approvals on two instances', async () => {
    await startWallet();
    await startWallet();
    await startProvisioning();
    await startProvisioning();
    const users = Array.from({ length: 4 }, () => `u-${randomUUID()}`);
    await Promise.all(
      users.flatMap((userId) => [
        ...Array.from({ length: 5 }, () => approve(userId)),
        client.request('wallet.provisioning.provision', { userId }),
        client.request('wallet.provisioning.provision', { userId, chains: ['ETH'] }),
      ]),
    );
    for (const userId of users) {
      await waitFor(() => allReady(userId), { timeoutMs: 30_000, what: `READY for ${userId}` });
      const list = await client.request('wallet.management.list', { userId });
      assert.deepEqual(list.items.map((w) => w.chain).sort(), ['APTOS', 'ETH', 'SOL']);
    }
    await waitFor(() => users.every((u) => eventsOf('wallet.provisioning.completed', u).length >= 1), { what: 'completed events' });
    for (const userId of users) {
      assert.equal(eventsOf('wallet.provisioning.completed', userId).length, 1);
      assert.equal(eventsOf('audit.provisioning.requested', userId).length, 3);
    }
  });

  it('should complete a user once when the job of a chain that became READY just before its worker died comes again', async () => {
    await startWallet();
    const prov = await startProvisioning();
    const userId = `u-${randomUUID()}`;
    // Every chain READY, the completion not yet recorded: a worker died between its READY and the
    // completion check, and its job was redelivered (twice here, to two consumers at once).
    const { databaseUrl } = await backingServices();
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    const wallets = { SOL: randomUUID(), ETH: randomUUID() };
    try {
      await db.query(`INSERT INTO ${provSchema.schema}.provisioning_users (user_id, chains) VALUES ($1, ARRAY['SOL', 'ETH'])`, [userId]);
      await db.query(
        `INSERT INTO ${provSchema.schema}.provisioning_chains (user_id, chain, status, attempts, wallet_id, address, lease_until)
         VALUES ($1, 'SOL', 'READY', 1, $2, 'sol-address', now()), ($1, 'ETH', 'READY', 1, $3, 'eth-address', now())`,
        [userId, wallets.SOL, wallets.ETH],
      );
    } finally {
      await db.end();
    }
    const worker = await caller(vhost, 'provisioning');
    try {
      await Promise.all([
        worker.publishEvent('provisioning.chain.requested', { userId, chain: 'ETH' }),
        worker.publishEvent('provisioning.chain.requested', { userId, chain: 'ETH' }),
      ]);
    } finally {
      await worker.stop();
    }
    await waitFor(() => eventsOf('wallet.provisioning.completed', userId).length >= 1, { what: 'the completed event' });
    assert.deepEqual(eventsOf('wallet.provisioning.completed', userId)[0]!.body.wallets, [
      { chain: 'SOL', walletId: wallets.SOL, address: 'sol-address' },
      { chain: 'ETH', walletId: wallets.ETH, address: 'eth-address' },
    ]);
    // Both jobs done (nothing to create for either), one completion, no wallet created for it.
    await waitFor(
      async () =>
        /^provisioning_jobs_processed_total\{[^}]*status="skipped"[^}]*\} 2$/m.test(await (await fetch(`http://127.0.0.1:${prov.port()}/metrics`)).text()),
      { what: 'both jobs processed' },
    );
    assert.equal(eventsOf('wallet.provisioning.completed', userId).length, 1);
    assert.equal((await client.request('wallet.management.list', { userId })).items.length, 0);
  });

  it('should pick up a PENDING chain whose job was lost once it is older than the stuck threshold', async () => {
    await startWallet();
    const prov = await startProvisioning({ PROVISIONING_STUCK_AFTER_MS: '10' });
    const userId = `u-${randomUUID()}`;
    // A job lost with its worker: the state row says PENDING and no message exists anywhere.
    const { databaseUrl } = await backingServices();
    const db = new pg.Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      await db.query(`INSERT INTO ${provSchema.schema}.provisioning_users (user_id, chains) VALUES ($1, ARRAY['SOL'])`, [userId]);
      await db.query(
        `INSERT INTO ${provSchema.schema}.provisioning_chains (user_id, chain, status, lease_until) VALUES ($1, 'SOL', 'PENDING', now() - interval '1 second')`,
        [userId],
      );
    } finally {
      await db.end();
    }
    assert.equal(await prov.sweep(), 1);
    await waitFor(() => allReady(userId, ['SOL']), { what: 'the stuck chain READY' });
    assert.equal((await client.request('wallet.management.list', { userId })).items.length, 1);
  });
});
