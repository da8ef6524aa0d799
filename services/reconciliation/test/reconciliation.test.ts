import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { type Anvil, startAnvil } from '@wallet-fleet/dev-runtimes';
import { type Broker, createBroker, defineTopology, outboxPrivilegesSql, outboxTableSql } from '@wallet-fleet/messaging';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { createWalletClient, type Hex, http } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { createWebhooksService } from '../../webhooks/src/app.js';
import { loadWebhooksConfig } from '../../webhooks/src/config.js';
import { deliver, newSecret, silent } from '../../webhooks/test/support.js';
import type { PassOutcome } from '../src/app.js';
import type { PassReport } from '../src/handlers/pass.js';
import { testReconciliation } from './support.js';

// anvil's first dev account (public, funded with 10,000 ETH on every anvil).
const ANVIL_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const DEAD_RPC = 'http://127.0.0.1:1';

function ran(r: PassOutcome): asserts r is Extract<PassOutcome, { runId: string }> {
  assert.ok('runId' in r, `expected a pass, got ${r.outcome}`);
}
const deposits = (r: PassOutcome) => {
  assert.ok('report' in r, `expected a pass, got ${r.outcome}`);
  assert.ok(!('error' in r.report.deposits), `deposits step failed: ${JSON.stringify(r.report.deposits)}`);
  return r.report.deposits as Exclude<PassReport['deposits'], { error: string }>;
};

describe('reconciliation: stuck deposits re-validated on chain, one pass at a time', function () {
  this.timeout(90_000);
  let anvil: Anvil;
  let vhost: TestVhost;
  let whSchema: TestSchema;
  let rcSchema: TestSchema;
  let databaseUrl: string;
  let redisUrl: string;
  let db: pg.Pool;
  let client: Broker;
  let events: amqp.ChannelModel;
  const seen: Array<{ routingKey: string; body: any }> = [];
  const secret = newSecret();
  const stopAfter: Array<{ stop(): Promise<void> }> = [];
  const address = privateKeyToAccount(generatePrivateKey()).address;
  let realJob: string;
  /** The webhooks service once its chain RPC is back (from the second test on). */
  let up: ReturnType<typeof webhooks>;
  let ghostJob: string;

  function webhooks(rpc: string) {
    const s = createWebhooksService(
      loadWebhooksConfig({
        AMQP_URL: vhost.as('webhooks'),
        ...whSchema.env,
        REDIS_URL: redisUrl,
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        WEBHOOK_SECRETS: secret,
        FLEET_DEV_MODE: 'true',
        SOLANA_RPC_URL: rpc,
        EVM_RPC_URL: rpc,
        // One attempt: with the RPC down the job is dead-lettered at once and the row stays pending,
        // which is what a processing stopped mid-way leaves behind.
        DEPOSIT_MAX_ATTEMPTS: '1',
        CHAIN_RPC_TIMEOUT_MS: '2000',
        // One confirmation is final on anvil here; credits are not re-checked (the webhooks tests do that).
        EVM_FINALITY: '1',
        DEPOSIT_RECHECK_WINDOW_SECONDS: '0',
      }),
      silent,
    );
    stopAfter.push(s);
    return s;
  }

  function reconciliation(env: Record<string, string> = {}) {
    const s = testReconciliation(vhost.as('reconciliation'), rcSchema.env, silent, {
      RECONCILE_REQUEST_TIMEOUT_MS: '10000',
      OUTBOX_SCHEMAS: whSchema.schema,
      ...env,
    });
    stopAfter.push(s);
    return s;
  }

  const job = async (id: string) => (await db.query('SELECT status, attempts FROM deposits WHERE deposit_id = $1', [id])).rows[0];
  const ledger = async (id: string) => Number((await db.query('SELECT count(*) AS n FROM ledger WHERE deposit_id = $1', [id])).rows[0].n);

  before(async () => {
    ({ databaseUrl, redisUrl } = await backingServices());
    anvil = await startAnvil({ port: 0 });
    vhost = await createFleetVhost('reconciliation');
    whSchema = await createSchemaName('rc_webhooks');
    rcSchema = await createSchemaName('reconciliation', { outboxReader: true });
    db = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${whSchema.schema}` });
    events = await amqp.connect(vhost.url);
    const ch = await events.createChannel();
    await ch.assertExchange('wallet.events', 'topic', { durable: true });
    const q = await ch.assertQueue('', { exclusive: true });
    for (const key of ['deposit.*', 'audit.webhooks.#', 'audit.reconciliation.#']) await ch.bindQueue(q.queue, 'wallet.events', key);
    await ch.consume(q.queue, (m) => m && seen.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }), { noAck: true });
    // Announces wallets as the wallet service does.
    client = createBroker({ url: vhost.as('wallet'), service: 'test-wallet', logger: silent, topology: defineTopology({ queues: [] }) });
    await client.start();

    // The webhooks service while the chain RPC is down: both deposits are accepted, their one
    // processing attempt fails, the jobs are dead-lettered, the rows stay pending.
    const down = webhooks(DEAD_RPC);
    await down.start();
    const wallet = { walletId: randomUUID(), userId: 'u-rc', chain: 'ETH' as const, address, label: null, isActive: true, createdAt: new Date().toISOString() };
    await client.publishEvent('wallet.created', wallet);
    await waitFor(async () => (await db.query('SELECT 1 FROM known_addresses WHERE wallet_id = $1', [wallet.walletId])).rowCount === 1);
    const payer = createWalletClient({ account: privateKeyToAccount(ANVIL_KEY), transport: http(anvil.url) });
    const txHash = await payer.sendTransaction({
      to: address,
      value: 12_345n,
      chain: { id: 31337, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [anvil.url] } } },
    });
    const base = `http://127.0.0.1:${down.port()}`;
    const real = await deliver({ base, secret }, { body: { chain: 'ETH', txHash, token: 'native', amount: '12345', toAddress: address } });
    const ghost = await deliver(
      { base, secret },
      { body: { chain: 'ETH', txHash: `0x${randomBytes(32).toString('hex')}` as Hex, token: 'native', amount: '7', toAddress: address } },
    );
    assert.equal(real.status, 200);
    assert.equal(ghost.status, 200);
    realJob = real.body.jobId;
    ghostJob = ghost.body.jobId;
    await waitFor(async () => (await job(realJob)).attempts.length === 1 && (await job(ghostJob)).attempts.length === 1, { what: 'first attempts' });
  });

  after(async () => {
    for (const s of stopAfter.reverse()) await s.stop().catch(() => undefined);
    await client?.stop();
    await events?.close().catch(() => undefined);
    await db?.end();
    await anvil?.stop();
    await vhost?.drop();
    await whSchema?.drop();
    await rcSchema?.drop();
  });

  it('should leave deposits pending, past their maximum age too, while the chain RPC cannot be asked', async () => {
    const rc = reconciliation({ RECONCILE_MAX_AGE_MS: '1000' });
    await rc.start();
    // Lets the deposits age past RECONCILE_MAX_AGE_MS (1 s): their age is the input under test.
    await new Promise((r) => setTimeout(r, 1100));
    const r = await rc.runPass();
    const t = deposits(r);
    assert.equal(r.outcome, 'completed');
    assert.deepEqual([t.checked, t.credited, t.failed, t.errors], [2, 0, 0, { UNAVAILABLE: 2 }]);
    assert.equal((await job(realJob)).status, 'pending');
    assert.equal((await job(ghostJob)).status, 'pending');
    await rc.stop();
  });

  it('should credit once a deposit whose processing stopped mid-way, and leave an unknown one for the next pass', async () => {
    // The webhooks service restarted with its RPC back; the jobs themselves are in the DLQ.
    await stopAfter[0]!.stop();
    up = webhooks(anvil.url);
    await up.start();
    const rc = reconciliation();
    await rc.start();

    const first = await rc.runPass();
    ran(first);
    assert.equal(first.outcome, 'completed');
    const t = deposits(first);
    assert.deepEqual([t.checked, t.credited, t.failed, t.stillPending], [2, 1, 0, 1]);
    assert.equal((await job(realJob)).status, 'credited');
    assert.equal((await job(realJob)).attempts.at(-1).by, 'reconciliation');
    assert.equal(await ledger(realJob), 1);
    assert.equal((await job(ghostJob)).status, 'pending');
    await waitFor(() => seen.some((e) => e.routingKey === 'deposit.credited' && e.body.depositId === realJob), { what: 'deposit.credited' });
    await waitFor(
      () => seen.some((e) => e.routingKey === 'audit.webhooks.deposit.reconcile' && e.body.resource.id === realJob && e.body.status === 'success'),
      {
        what: 'audit event of the recovery',
      },
    );
    await waitFor(() => seen.some((e) => e.routingKey === 'audit.reconciliation.pass' && e.body.resource.id === first.runId), {
      what: 'audit event of the pass',
    });

    // The next pass finds nothing more to credit: the ledger holds one entry.
    const second = await rc.runPass();
    ran(second);
    assert.deepEqual([deposits(second).checked, deposits(second).credited], [1, 0]);
    assert.equal(await ledger(realJob), 1);

    const metrics = await (await fetch(`http://127.0.0.1:${rc.port()}/metrics`)).text();
    assert.match(metrics, /reconciliation_runs_total\{outcome="completed"[^}]*\} 2/);
    assert.match(metrics, /reconciliation_deposits_total\{result="credited"[^}]*\} 1/);
    assert.match(metrics, /reconciliation_run_duration_seconds_count\{[^}]*\} 2/);
    assert.equal((await fetch(`http://127.0.0.1:${rc.port()}/runs`, { method: 'POST' })).status, 404, 'not on the public port');
    const runs = (await (await fetch(`http://127.0.0.1:${rc.adminPort()}/runs?limit=2`)).json()) as {
      runs: Array<{ runId: string; status: string; report: any }>;
    };
    assert.deepEqual(
      runs.runs.map((x) => [x.runId, x.status]),
      [
        [second.runId, 'completed'],
        [first.runId, 'completed'],
      ],
    );
    assert.equal(runs.runs[1]!.report.deposits.credited, 1);
    assert.equal((await fetch(`http://127.0.0.1:${rc.adminPort()}/runs?limit=0`)).status, 400);
    await rc.stop();
  });

  it('should fail a deposit still unknown on chain past its maximum age', async () => {
    const rc = reconciliation({ RECONCILE_MAX_AGE_MS: '1000' });
    await rc.start();
    const r = await rc.runPass();
    assert.deepEqual([deposits(r).checked, deposits(r).failed], [1, 1]);
    const row = await job(ghostJob);
    assert.equal(row.status, 'failed');
    assert.match(row.attempts.at(-1).message, /not found/);
    assert.equal(await ledger(ghostJob), 0);
    await waitFor(() => seen.some((e) => e.routingKey === 'deposit.failed' && e.body.depositId === ghostJob), { what: 'deposit.failed' });
    await rc.stop();
  });

  it('should credit a deposit rejected because it arrived before its wallet was known, once the wallet is', async () => {
    // A wallet whose wallet.created event lags behind the deposit (a backlog on the wallets queue).
    const late = privateKeyToAccount(generatePrivateKey()).address;
    const payer = createWalletClient({ account: privateKeyToAccount(ANVIL_KEY), transport: http(anvil.url) });
    const txHash = await payer.sendTransaction({
      to: late,
      value: 777n,
      chain: { id: 31337, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [anvil.url] } } },
    });
    const res = await deliver(
      { base: `http://127.0.0.1:${up.port()}`, secret },
      { body: { chain: 'ETH', txHash, token: 'native', amount: '777', toAddress: late } },
    );
    assert.equal(res.status, 200);
    await waitFor(async () => (await job(res.body.jobId)).status === 'rejected', { what: 'rejected: address unknown' });

    const rc = reconciliation();
    await rc.start();
    assert.equal(deposits(await rc.runPass()).credited, 0, 'still unknown: left rejected');
    assert.equal((await job(res.body.jobId)).status, 'rejected');

    const wallet = {
      walletId: randomUUID(),
      userId: 'u-late',
      chain: 'ETH' as const,
      address: late,
      label: null,
      isActive: true,
      createdAt: new Date().toISOString(),
    };
    await client.publishEvent('wallet.created', wallet);
    await waitFor(async () => (await db.query('SELECT 1 FROM known_addresses WHERE wallet_id = $1', [wallet.walletId])).rowCount === 1);
    const r = await rc.runPass();
    assert.equal(deposits(r).credited, 1);
    const row = await job(res.body.jobId);
    assert.equal(row.status, 'credited');
    assert.deepEqual(
      row.attempts.map((a: { status: string }) => a.status),
      ['rejected', 'retry', 'credited'],
    );
    assert.equal(await ledger(res.body.jobId), 1);
    assert.equal(deposits(await rc.runPass()).checked, 0, 'nothing left to look at');
    await rc.stop();
  });

  describe('the pass lock', () => {
    let holder: ChildProcess | undefined;
    afterEach(() => {
      holder?.kill('SIGKILL');
      holder = undefined;
    });

    /** Another replica holding the lock, in its own process. */
    async function holdLock(timeoutMs: number): Promise<ChildProcess> {
      const child = spawn(process.execPath, ['--import', 'tsx', 'services/reconciliation/test/fixtures/hold-lock.ts'], {
        env: { ...process.env, DATABASE_URL: databaseUrl, LOCK_KEY: `wallet-fleet:reconciliation:${rcSchema.schema}`, LOCK_TIMEOUT_MS: String(timeoutMs) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const line = await new Promise<string>((resolve, reject) => {
        child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
        child.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
      });
      assert.equal(line, 'held');
      return child;
    }

    it('should skip a pass while another replica holds the lock, and run once that replica crashes', async () => {
      const rc = reconciliation();
      await rc.start();
      holder = await holdLock(60_000);
      assert.deepEqual(await rc.runPass(), { outcome: 'skipped_locked' });
      holder.kill('SIGKILL');
      const r = await waitFor(
        async () => {
          const x = await rc.runPass();
          return x.outcome === 'completed' ? x : undefined;
        },
        { what: 'a pass after the holder died', timeoutMs: 10_000 },
      );
      assert.equal(r.outcome, 'completed');
      const metrics = await (await fetch(`http://127.0.0.1:${rc.port()}/metrics`)).text();
      assert.match(metrics, /reconciliation_runs_total\{outcome="skipped_locked"[^}]*\} [1-9]/);
      await rc.stop();
    });

    it('should take the lock from a replica that froze holding it, after the lock timeout', async () => {
      const rc = reconciliation();
      await rc.start();
      holder = await holdLock(1500);
      holder.kill('SIGSTOP');
      assert.deepEqual(await rc.runPass(), { outcome: 'skipped_locked' });
      const started = Date.now();
      await waitFor(async () => (await rc.runPass()).outcome === 'completed', { what: 'a pass after the frozen holder timed out', timeoutMs: 15_000 });
      assert.ok(Date.now() - started >= 500, 'the frozen holder kept the lock for a while');
      await rc.stop();
    });

    it('should make one pass per interval however many replicas run on schedule', async () => {
      // A deployment of its own (no runs yet): two replicas whose timers fire close together.
      const fresh = await createSchemaName('reconciliation', { outboxReader: true });
      try {
        const env = { ...fresh.env, RECONCILE_INTERVAL_MS: '3600000' };
        const a = reconciliation(env);
        const b = reconciliation(env);
        await a.start();
        await b.start();
        assert.equal((await a.runPass('schedule')).outcome, 'completed');
        assert.equal((await b.runPass('schedule')).outcome, 'skipped_recent');
        assert.equal((await b.runPass('manual')).outcome, 'completed', "an operator's pass is never skipped for being recent");
        await a.stop();
        await b.stop();
      } finally {
        await fresh.drop();
      }
    });
  });

  it("should report outbox rows a relay left behind, count and age per schema (not those set aside), and leave them to their own service's relay", async () => {
    const orphan = await createSchemaName('rc_orphan');
    const admin = new pg.Pool({ connectionString: databaseUrl });
    try {
      await admin.query(outboxTableSql(orphan.schema));
      await admin.query(outboxPrivilegesSql(orphan.schema, { skipSetAside: true }));
      await admin.query(
        `INSERT INTO "${orphan.schema}".outbox (exchange, routing_key, message_id, payload, created_at, failed_at)
         VALUES ('wallet.events', 'audit.wallet.create', $1, '{}', now() - interval '10 minutes', NULL),
                ('wallet.events', 'audit.wallet.create', $2, '{}', now() - interval '2 minutes', NULL),
                ('wallet.events', 'audit.wallet.create', $3, '{}', now(), NULL),
                ('wallet.events', 'audit.wallet.create', $4, '{}', now() - interval '20 minutes', now())`,
        [randomUUID(), randomUUID(), randomUUID(), randomUUID()],
      );
      // Reconciliation's own runtime role (a member of the outbox reader group) counts the rows
      // through the schema's SECURITY DEFINER function; it has no privilege on the table itself.
      const rc = reconciliation({ OUTBOX_SCHEMAS: `${orphan.schema},no_such_schema_here` });
      await rc.start();
      const r = await rc.runPass();
      assert.equal(r.outcome, 'failed', 'a schema without an outbox fails the pass');
      assert.ok('report' in r);
      const [found, missing] = r.report.outbox;
      assert.deepEqual([found?.schema, found?.staleRows, found?.error], [orphan.schema, 2, undefined]);
      assert.ok(found!.oldestSeconds! >= 600 && found!.oldestSeconds! < 660, `oldest ${found!.oldestSeconds}`);
      assert.deepEqual(missing, { schema: 'no_such_schema_here', staleRows: 0, oldestSeconds: null, error: 'NOT_FOUND' });
      // Not published from here: the rows wait for the relay of the service that wrote them.
      assert.equal(Number((await admin.query(`SELECT count(*) AS n FROM "${orphan.schema}".outbox`)).rows[0].n), 4);
      const metrics = await (await fetch(`http://127.0.0.1:${rc.port()}/metrics`)).text();
      assert.match(metrics, new RegExp(`reconciliation_outbox_stale_rows\\{schema="${orphan.schema}"[^}]*\\} 2`));
      assert.match(metrics, new RegExp(`reconciliation_outbox_oldest_stale_seconds\\{schema="${orphan.schema}"[^}]*\\} 6[0-5][0-9]`));
      await rc.stop();
    } finally {
      await admin.end();
      await orphan.drop();
    }
  });

  it('should report drift between deposits and the ledger', async () => {
    // A manual edit: the credit's ledger entry is gone while the deposit says credited.
    await db.query('DELETE FROM ledger WHERE deposit_id = $1', [realJob]);
    const rc = reconciliation();
    await rc.start();
    const r = await rc.runPass();
    assert.ok('report' in r && !('error' in r.report.drift));
    const { assets, ...totals } = r.report.drift;
    assert.deepEqual(totals, {
      depositsPending: 0,
      oldestPendingSeconds: null,
      creditedWithoutLedgerEntry: 1,
      ledgerEntryWithoutCredit: 0,
      ledgerAmountMismatch: 0,
      reversedWithoutCompensation: 0,
    });
    // Per asset: the drift is in ETH's native coin, whose one remaining credit is the 777 wei.
    assert.deepEqual(
      assets.map((a) => [a.chain, a.asset, a.decimals, a.credited, a.drift.creditedWithoutLedgerEntry]),
      [['ETH', 'native', 18, '777', 1]],
    );
    const metrics = await (await fetch(`http://127.0.0.1:${rc.port()}/metrics`)).text();
    assert.match(metrics, /reconciliation_drift\{kind="credited_without_ledger_entry"[^}]*\} 1/);
    await rc.stop();
  });
});
