// `pnpm bench [suite ...]`: the fleet's throughput and latency beside the raw infrastructure
// measured in the same run, as ratios. Suites: audit, rpc, wallet, policy (the signing path's policy check), provisioning, webhooks.
// Sizes scale with BENCH_SCALE (default 1).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Keypair, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import { backingServices, createFleetVhost, createSchemaName } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { decodeSolanaTransaction } from '@wallet-fleet/chains';
import { createBroker, defineTopology } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { createPolicyGate } from '../../services/wallet/src/policy/gate.js';
import { createPolicyStore } from '../../services/wallet/src/store/policy-store.js';
import { migratedWalletSchema } from '../../services/wallet/test/support.js';
import { freePort, startService } from '../e2e/support/service-process.js';
import { bareKmsClient, rawInsert, rawInsertThenPublish, rawKmsCreate, rawKmsSign, rawPublishConsume, rawRpc, rawRpcToProcess } from './raw.js';
import { type CpuUsage, printCpu, withCpu } from './cpu.js';
import { printTable, runConcurrent, summarize, type Measurement } from './stats.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
// `BENCH_SERVICE_NODE_OPTIONS="--import ./profiler.mjs"` (a module that starts node:inspector's
// profiler): NODE_OPTIONS of the wallet, audit and webhooks processes under test, to see where their time goes.
const profiled: Record<string, string> = process.env.BENCH_SERVICE_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVICE_NODE_OPTIONS } : {};
const n = (x: number) => Math.max(10, Math.round(x * scale));
const silent = createLogger({ service: 'bench', level: 'silent' });
/** `aim <what>: met|NOT met`, for the notes column. */
const aim = (what: string, met: boolean) => `aim ${what}: ${met ? 'met' : 'NOT met'}`;

/**
 * A vhost with the fleet's broker users and permissions (infra/rabbitmq/definitions.json): each
 * service runs as its own user (`vhost.as(name)`), clients as `backend` or `ops`, as in production.
 * Raw baselines use the administrative user (`vhost.url`), which no consumer of theirs checks.
 */
const fleetVhost = () => createFleetVhost('bench');

async function auditSuite(): Promise<void> {
  const { databaseUrl } = await backingServices();
  const vhost = await fleetVhost();
  const schema = await createSchemaName('bench_audit');
  const total = n(20_000);
  const audit = await startService('audit', {
    AMQP_URL: vhost.as('audit'),
    KMS_ENDPOINT: '127.0.0.1:9', // checkpoints are not measured here
    FLEET_DEV_MODE: 'true',
    ...schema.env,
    LOG_LEVEL: 'warn',
  });
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const conn = await amqp.connect(vhost.as('backend'), { noDelay: true });
  try {
    const rawPc = await rawPublishConsume(vhost.url, total);
    const rawIns = await rawInsert(databaseUrl, n(5000));

    // The fleet: the same confirmed publishing as the raw baseline, into wallet.events; done when
    // the audit chain holds every event.
    const ch = await conn.createConfirmChannel();
    const events = Array.from({ length: total }, (_, i) => ({
      eventId: randomUUID(),
      actor: { type: 'service', id: 'bench' },
      action: 'bench.ingest',
      resource: { type: 'bench', id: String(i) },
      userId: `user-${i % 100}`,
      status: 'success',
      after: { padding: 'x'.repeat(200) },
    }));
    const start = process.hrtime.bigint();
    let inFlight = 0;
    const waiters: Array<() => void> = [];
    for (const e of events) {
      while (inFlight >= 256) await new Promise<void>((r) => waiters.push(r));
      inFlight++;
      const body = Buffer.from(JSON.stringify({ ...e, occurredAt: new Date().toISOString() }));
      ch.publish('wallet.events', 'audit.backend.ingest', body, { persistent: true, userId: 'backend' }, () => {
        inFlight--;
        waiters.shift()?.();
      });
    }
    await ch.waitForConfirms();
    const table = `"${schema.schema}".audit_chain_head`;
    for (;;) {
      const { rows } = await db.query(`SELECT sequence FROM ${table}`);
      if (Number(rows[0].sequence) >= total) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    // Publish-to-stored latency of each event, from the database's own record.
    const { rows: lat } = await db.query(`SELECT extract(epoch FROM recorded_at - occurred_at) * 1000 AS ms FROM "${schema.schema}".audit_events`);
    const fleet: Measurement = { name: `audit ingestion (${total} events)`, ops: total, seconds, latencies: lat.map((r) => Number(r.ms)) };
    printTable('Audit ingestion: publish (confirmed) → stored in the hash chain; latency = publish → stored', [
      { fleet, raw: rawPc },
      { fleet, raw: rawIns },
    ]);
  } finally {
    await conn.close().catch(() => undefined);
    await audit.stop();
    await db.end();
    await vhost.drop();
    await schema.drop();
  }
}

async function rpcSuite(): Promise<void> {
  const vhost = await fleetVhost();
  const schema = await createSchemaName('bench_rpc');
  const total = n(3000);
  // The messaging runtime alone: a trivial handler, so the difference to raw is our overhead
  // (validation, correlation, context, metrics, confirms of the request are not used by RPC).
  const server = createBroker({
    url: vhost.url,
    service: 'bench-server',
    logger: silent,
    topology: defineTopology({
      queues: [{ name: 'bench.commands', kind: 'rpc', bindings: [{ exchange: 'wallet.commands', pattern: 'wallet.audit.verify' }] }],
    }),
  });
  server.handleCommands('bench.commands', { 'wallet.audit.verify': async () => ({ valid: true, checked: 0 }) });
  // The server runs as the administrative user, the client as an operator (wallet.audit.* callers).
  const client = createBroker({ url: vhost.as('ops'), service: 'bench-client', logger: silent, topology: defineTopology({ queues: [] }) });
  await server.start();
  await client.start();
  try {
    const raw = await rawRpc(vhost.url, total);
    const fleet = await runConcurrent('fleet RPC, trivial handler', total, 1, () => client.request('wallet.audit.verify', {}));
    const raw64 = await rawRpcConcurrent(vhost.url, total * 4, 64);
    const fleet64 = await runConcurrent('fleet RPC, 64 in flight', total * 4, 64, () => client.request('wallet.audit.verify', {}));
    await server.stop();

    const audit = await startService('audit', {
      AMQP_URL: vhost.as('audit'),
      KMS_ENDPOINT: '127.0.0.1:9', // checkpoints are not measured here
      FLEET_DEV_MODE: 'true',
      ...schema.env,
      LOG_LEVEL: 'warn',
      ...profiled,
    });
    try {
      const query = await runConcurrent('wallet.audit.query {limit:1} (audit process, PostgreSQL)', total, 1, () =>
        client.request('wallet.audit.query', { userId: 'nobody', limit: 1 }),
      );
      // The raw baseline again right after, so that both sides of the aim see the same machine load.
      const rawAfter = await rawRpc(vhost.url, total);
      // And raw responders in their own process, as the audit service is: one that replies at once;
      // one that runs the very query of wallet.audit.query {limit:1} first (what the process hop and
      // the database round trip alone add); and that one again with client and responder using the
      // AMQP features the fleet's messaging uses (commands exchange, mandatory, confirms on both
      // sides, publishing on its own connection, the fleet's headers): what is left between it and
      // the fleet is the fleet's own code (validation, authorization, context, metrics).
      const database = { url: schema.env.DATABASE_URL, schema: schema.env.DATABASE_SCHEMA };
      const rawProcess = await rawRpcToProcess(vhost.url, total);
      const rawQuery = await rawRpcToProcess(vhost.url, total, database);
      const rawShaped = await rawRpcToProcess(vhost.url, total, database, { userId: vhost.user });
      const overhead = summarize(query).p50 - Math.min(summarize(raw).p50, summarize(rawAfter).p50);
      const floor = summarize(rawShaped).p50 - Math.min(summarize(raw).p50, summarize(rawAfter).p50);
      printTable('RPC round trip over direct reply-to (sequential unless noted)', [
        { fleet, raw },
        { fleet: fleet64, raw: raw64 },
        {
          fleet: query,
          raw: rawAfter,
          note: `includes a PostgreSQL query (~0.1 ms); p50 +${overhead.toFixed(2)} ms over raw, ${aim('<= 0.5 ms', overhead <= 0.5)}`,
        },
        { fleet: query, raw: rawProcess, note: 'the responder in its own process, as the audit service is' },
        { fleet: query, raw: rawQuery, note: 'a responder process that runs the same query' },
        {
          fleet: query,
          raw: rawShaped,
          note: `the same with the fleet's AMQP features and no fleet code: +${floor.toFixed(2)} ms over raw; the rest is the fleet's code`,
        },
      ]);
    } finally {
      await audit.stop();
    }
  } finally {
    await client.stop();
    await server.stop();
    await vhost.drop();
    await schema.drop();
  }
}

async function rawRpcConcurrent(url: string, total: number, concurrency: number): Promise<Measurement> {
  // rawRpc is sequential; for the concurrent baseline run several raw clients at once.
  const per = Math.ceil(total / concurrency);
  const start = process.hrtime.bigint();
  const parts = await Promise.all(Array.from({ length: concurrency }, () => rawRpc(url, per)));
  return {
    name: `raw amqplib RPC, ${concurrency} in flight`,
    ops: per * concurrency,
    seconds: Number(process.hrtime.bigint() - start) / 1e9,
    latencies: parts.flatMap((p) => p.latencies),
  };
}

/** Starts the KMS emulator as its own process (as the fleet runs it), with keys in a temp dir. */
async function kmsEmulatorProcess(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-kms-'));
  const child = spawn(process.execPath, ['packages/kms-emulator/dist/main.js'], {
    cwd: fileURLToPath(new URL('../../', import.meta.url)),
    env: { ...process.env, KMS_EMULATOR_PORT: String(port), KMS_EMULATOR_DATA_DIR: dataDir },
    stdio: 'ignore',
  });
  const endpoint = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (open) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    endpoint,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Waits until the wallet service's key pool holds `size` unassigned keys of each kind (created ahead of demand). */
async function poolFilled(databaseUrl: string, schema: string, size: number): Promise<void> {
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    for (;;) {
      const { rows } = await db
        .query(`SELECT count(*)::int AS n FROM "${schema}".key_pool WHERE wallet_id IS NULL GROUP BY algorithm`)
        .catch(() => ({ rows: [] as Array<{ n: number }> }));
      if (rows.length === 2 && rows.every((r) => r.n >= size)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await db.end();
  }
}

/**
 * The wallet service's environment for a bench with a key pool of `size` keys per kind, filled once
 * before measuring and not refilled during the run (a window of an hour allows just the first fill),
 * as in production where the refiller creates keys ahead of demand at its quota-bound pace.
 */
const poolEnv = (size: number) => ({
  KEY_POOL_SIZE: String(size),
  KEY_POOL_CREATES_PER_WINDOW: String(2 * size),
  KEY_POOL_RATE_WINDOW_MS: '3600000',
  KEY_POOL_REFILL_CONCURRENCY: '16',
  KEY_POOL_REFILL_INTERVAL_MS: '200',
});

async function walletSuite(): Promise<void> {
  const { databaseUrl } = await backingServices();
  const vhost = await fleetVhost();
  const schema = await createSchemaName('bench_wallet');
  const kms = await kmsEmulatorProcess();
  const client = createBroker({ url: vhost.as('backend'), service: 'bench-client', logger: silent, topology: defineTopology({ queues: [] }) });
  const bare = bareKmsClient(kms.endpoint);
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  let wallet: Awaited<ReturnType<typeof startService>> | undefined;
  try {
    // A thousand: at ~1,000 creates/s a smaller run lasts a fraction of a second, too short to read.
    const creates = n(1000);
    const moderateCreates = n(200);
    const signs = n(2000);
    const walletEnv = {
      AMQP_URL: vhost.as('wallet'),
      ...schema.env,
      KMS_ENDPOINT: kms.endpoint,
      FLEET_DEV_MODE: 'true',
      SIGN_RATE_PER_MINUTE: '100000',
      LOG_LEVEL: 'warn',
      ...poolEnv(2 * creates + moderateCreates + 10),
      ...profiled,
    };
    wallet = await startService('wallet', walletEnv);
    await client.start();
    const [ring] = await bare.createKeyRing({ parent: 'projects/bench/locations/global', keyRingId: `raw-${randomUUID().slice(0, 8)}`, keyRing: {} });
    await poolFilled(databaseUrl, schema.schema, 2 * creates + moderateCreates + 10);

    const { result: rawCreate, cpu: rawCreateCpu } = await withCpu(creates, () => rawKmsCreate(bare, ring.name!, creates, 32));
    const create = (prefix: string) => (i: number) => client.request('wallet.management.create', { userId: `${prefix}-${i % 50}`, chain: 'SOL' });
    const { result: fleetCreate, cpu: fleetCreateCpu } = await withCpu(creates, () =>
      runConcurrent('wallet.management.create (SOL, 32 in flight)', creates, 32, create('bench')),
    );
    const moderate = await runConcurrent('wallet.management.create (4 in flight)', moderateCreates, 4, (i) =>
      client.request('wallet.management.create', { userId: `moderate-${i % 50}`, chain: 'SOL' }),
    );
    const metrics = await (await fetch(wallet.url('/metrics'))).text();
    const empty = [...metrics.matchAll(/^wallet_key_pool_empty_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);

    const w = await client.request('wallet.management.create', { userId: 'signer', chain: 'SOL' });
    const { rows } = await db.query(`SELECT kms_key_version FROM "${schema.schema}".wallets WHERE wallet_id = $1`, [w.walletId]);
    const tx = new Transaction({ feePayer: new PublicKey(w.address), recentBlockhash: '11111111111111111111111111111111' })
      .add(SystemProgram.transfer({ fromPubkey: new PublicKey(w.address), toPubkey: new PublicKey(w.address), lamports: 1 }))
      .serialize({ requireAllSignatures: false, verifySignatures: false });
    // The bare client signs the very bytes the wallet signs: a SOL transaction's message.
    const message = Transaction.from(tx).serializeMessage();
    const { result: rawSign, cpu: rawSignCpu } = await withCpu(signs, () => rawKmsSign(bare, rows[0].kms_key_version, message, signs, 32));
    const sign = () => client.request('wallet.transaction.sign', { userId: 'signer', walletId: w.walletId, transaction: tx.toString('base64') });
    const { result: fleetSign, cpu: fleetSignCpu } = await withCpu(signs, () => runConcurrent('wallet.transaction.sign (SOL, 32 in flight)', signs, 32, sign));
    // The same work split across two wallet processes (replicas sharing the queue): if the figure
    // does not move, the limit is not the wallet process but what the processes share.
    const replica = await startService('wallet', walletEnv);
    let splitSign: Measurement;
    let splitSignCpu: CpuUsage;
    let splitCreate: Measurement;
    let splitCreateCpu: CpuUsage;
    try {
      ({ result: splitSign, cpu: splitSignCpu } = await withCpu(signs, () => runConcurrent('sign, 2 wallet processes (32 in flight)', signs, 32, sign)));
      ({ result: splitCreate, cpu: splitCreateCpu } = await withCpu(creates, () =>
        runConcurrent('create, 2 wallet processes (32 in flight)', creates, 32, create('split')),
      ));
    } finally {
      await replica.stop();
    }
    const c = summarize(fleetCreate);
    const rc = summarize(rawCreate);
    const p95 = summarize(moderate).p95;
    const signRatio = summarize(fleetSign).opsPerSec / summarize(rawSign).opsPerSec;
    printTable('Wallet service over RabbitMQ beside the bare @google-cloud/kms client (KMS emulator process, same run)', [
      {
        fleet: fleetCreate,
        raw: rawCreate,
        note: `${aim('>= 800/s or >= 2x bare', c.opsPerSec >= 800 || c.opsPerSec >= 2 * rc.opsPerSec)}; keys from the pool, ${empty} create(s) found it empty`,
      },
      { fleet: splitCreate, raw: rawCreate, note: 'the same creates split across two wallet processes' },
      { fleet: moderate, raw: rawCreate, note: `p95 ${p95.toFixed(1)} ms, ${aim('p95 < 20 ms', p95 < 20)}` },
      { fleet: fleetSign, raw: rawSign, note: aim('>= 0.7 of bare', signRatio >= 0.7) },
      { fleet: splitSign, raw: rawSign, note: 'the same signing split across two wallet processes' },
    ]);
    printCpu('Where the CPU of creates and signings went (all processes of the machine, from /proc)', [
      { name: 'bare CreateCryptoKey + wait ENABLED', cpu: rawCreateCpu },
      { name: 'fleet create, one wallet process', cpu: fleetCreateCpu },
      { name: 'fleet create, two wallet processes', cpu: splitCreateCpu },
      { name: 'bare AsymmetricSign', cpu: rawSignCpu },
      { name: 'fleet sign, one wallet process', cpu: fleetSignCpu },
      { name: 'fleet sign, two wallet processes', cpu: splitSignCpu },
    ]);
  } finally {
    await bare.close();
    await db.end();
    await client.stop();
    await wallet?.stop();
    await kms.stop();
    await vhost.drop();
    await schema.drop();
  }
}

/**
 * The policy check of the signing path alone (issue 11), on a schema migrated with the wallet
 * service's migrations: no broker, no KMS, so it runs in seconds.
 */
async function policySuite(): Promise<void> {
  const db = await migratedWalletSchema('bench_policy');
  try {
    const signer = Keypair.generate().publicKey;
    const w = { userId: 'signer', walletId: randomUUID(), address: signer.toBase58() };
    const tx = new Transaction({ feePayer: signer, recentBlockhash: '11111111111111111111111111111111' })
      .add(SystemProgram.transfer({ fromPubkey: signer, toPubkey: Keypair.generate().publicKey, lamports: 1 }))
      .serialize({ requireAllSignatures: false, verifySignatures: false });
    const policy = await policyCheck(db.runtime, w, tx, n(3000));
    // The floor of any check that records a reservation durably: one INSERT, one round trip, one commit.
    await db.owner.query('CREATE TABLE bench_floor (id uuid PRIMARY KEY, amount numeric NOT NULL)');
    const floor = await runConcurrent('raw INSERT, one commit (sequential)', n(3000), 1, () =>
      db.owner.query('INSERT INTO bench_floor VALUES ($1, 1)', [randomUUID()]),
    );
    const p50 = summarize(policy.capped).p50;
    printTable('The policy check of the signing path (decode, engine, cap reservation) against the wallet schema, sequential', [
      { fleet: policy.capped, raw: policy.plain, note: `p50 ${p50.toFixed(2)} ms with caps, ${aim('p50 < 1 ms', p50 < 1)}` },
      { fleet: policy.capped, raw: floor, note: 'against the floor: one durable INSERT' },
    ]);
  } finally {
    await db.end();
  }
}

/**
 * What the policy adds to a signing (issue 11), with the wallet service's own code and database, as
 * the runtime role: the SOL transaction decoded, the rules (from memory after the first read)
 * evaluated, the spend reserved in one `policy_reserve` call. Once with no rules at all, then with a
 * per-transaction limit and both daily caps set on the wallet and user (which moves the policy epoch:
 * the first capped check reloads the rules).
 */
async function policyCheck(
  pool: pg.Pool,
  w: { userId: string; walletId: string; address: string },
  tx: Buffer,
  total: number,
): Promise<{ plain: Measurement; capped: Measurement }> {
  const store = createPolicyStore(pool, {
    enqueue: () => Promise.reject(new Error('the bench sets no policy through this store')),
  });
  const gate = createPolicyGate(store);
  const check = async () => {
    const decision = await gate.decide(w, decodeSolanaTransaction(tx, { wallet: w.address }), `bench:${randomUUID()}`);
    if (!decision.allowed) throw new Error(`policy denied the bench transaction: ${decision.denial?.message}`);
  };
  const plain = await runConcurrent('policy check, no rules', total, 1, check);
  const big = '1000000000000000000';
  await pool.query(`INSERT INTO policies (scope, scope_id, rules, version) VALUES ('user', $1, $3, 1), ('wallet', $2, $4, 1)`, [
    w.userId,
    w.walletId,
    JSON.stringify({ dailyPerUser: { SOL: big } }),
    JSON.stringify({ maxPerTransaction: { SOL: big }, dailyPerWallet: { SOL: big } }),
  ]);
  const capped = await runConcurrent('policy check, user and wallet caps', total, 1, check);
  return { plain, capped };
}

/**
 * Provisioning end to end: approval published → `wallet.provisioning.completed` received (three
 * wallets through the wallet service and KMS emulator), with 16 users in flight; beside the wallet
 * service's own create rate for the same three wallets per user, measured in the same run.
 */
async function provisioningSuite(): Promise<void> {
  const { databaseUrl } = await backingServices();
  const vhost = await fleetVhost();
  const walletSchema = await createSchemaName('bench_wallet');
  const provSchema = await createSchemaName('bench_prov');
  const kms = await kmsEmulatorProcess();
  const client = createBroker({ url: vhost.as('backend'), service: 'bench-client', logger: silent, topology: defineTopology({ queues: [] }) });
  let wallet: Awaited<ReturnType<typeof startService>> | undefined;
  let prov: Awaited<ReturnType<typeof startService>> | undefined;
  const conn = await amqp.connect(vhost.url, { noDelay: true });
  try {
    const users = n(200);
    // SOL and APTOS take Ed25519 keys: two per user in each of the four measurements.
    const poolSize = 8 * users + 10;
    const walletEnv = {
      AMQP_URL: vhost.as('wallet'),
      ...walletSchema.env,
      KMS_ENDPOINT: kms.endpoint,
      FLEET_DEV_MODE: 'true',
      LOG_LEVEL: 'warn',
      ...poolEnv(poolSize),
    };
    const provEnv = { AMQP_URL: vhost.as('provisioning'), ...provSchema.env, LOG_LEVEL: 'warn', PROVISIONING_CONCURRENCY: '64' };
    wallet = await startService('wallet', walletEnv);
    prov = await startService('provisioning', provEnv);
    await client.start();
    const ch = await conn.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'wallet.events', 'wallet.provisioning.completed');
    const waiting = new Map<string, () => void>();
    await ch.consume(
      q.queue,
      (m) => {
        if (m) waiting.get(JSON.parse(m.content.toString()).userId)?.();
      },
      { noAck: true },
    );

    await poolFilled(databaseUrl, walletSchema.schema, poolSize);
    const chains = ['SOL', 'ETH', 'APTOS'] as const;
    const { result: direct, cpu: directCpu } = await withCpu(users, () =>
      runConcurrent('wallet.management.create x3 per user (16 users in flight)', users, 16, (i) =>
        Promise.all(chains.map((chain) => client.request('wallet.management.create', { userId: `direct-${i}`, chain, idempotencyKey: `bench:${chain}` }))),
      ),
    );
    const approve = async (userId: string) => {
      const done = new Promise<void>((resolve) => waiting.set(userId, resolve));
      await client.publishEvent('kyc.approved', { userId });
      await done;
      waiting.delete(userId);
    };
    const { result: fleet, cpu: fleetCpu } = await withCpu(users, () =>
      runConcurrent('kyc.approved → completed (16 users in flight)', users, 16, (i) => approve(`prov-${i}-${randomUUID().slice(0, 8)}`)),
    );
    const { result: offered, cpu: offeredCpu } = await withCpu(users, () =>
      runAtRate('kyc.approved → completed at 50 users/s offered (open loop)', users, 50, (i) => approve(`open-${i}-${randomUUID().slice(0, 8)}`)),
    );
    // The same offered load with the work split across processes: a second wallet and a second
    // provisioning process beside the first ones.
    const replicas = [await startService('wallet', walletEnv), await startService('provisioning', provEnv)];
    let split: Measurement;
    let splitCpu: CpuUsage;
    try {
      ({ result: split, cpu: splitCpu } = await withCpu(users, () =>
        runAtRate('the same, 2 wallet + 2 provisioning processes', users, 50, (i) => approve(`split-${i}-${randomUUID().slice(0, 8)}`)),
      ));
    } finally {
      for (const r of replicas) await r.stop();
    }
    const sp = summarize(split);
    const o = summarize(offered);
    const f = summarize(fleet);
    printTable('Provisioning end to end beside the wallet service creating the same wallets (users/s, 3 chains each; same run)', [
      { fleet, raw: direct, note: `approval-to-ready p50 ${f.p50.toFixed(1)} ms, p95 ${f.p95.toFixed(1)} ms (keys from the pool)` },
      { fleet: offered, raw: direct, note: `p95 ${o.p95.toFixed(1)} ms, ${aim('p95 < 250 ms at 50 users/s', o.p95 < 250)}` },
      { fleet: split, raw: direct, note: `p95 ${sp.p95.toFixed(1)} ms with the work split across processes` },
    ]);
    printCpu('Where the CPU of provisioning went (per user: three wallets; all processes of the machine, from /proc)', [
      { name: 'create x3, 16 users in flight', cpu: directCpu },
      { name: 'provisioning, 16 users in flight', cpu: fleetCpu },
      { name: 'provisioning at 50 users/s offered', cpu: offeredCpu },
      { name: 'the same, 2 wallet + 2 provisioning processes', cpu: splitCpu },
    ]);
  } finally {
    await conn.close().catch(() => undefined);
    await client.stop();
    await prov?.stop();
    await wallet?.stop();
    await kms.stop();
    await vhost.drop();
    await walletSchema.drop();
    await provSchema.drop();
  }
}

/** Starts op i at i / ratePerSec seconds (open loop); latency from the scheduled start to the answer. */
async function runAtRate(name: string, total: number, ratePerSec: number, op: (i: number) => Promise<unknown>): Promise<Measurement> {
  const latencies: number[] = new Array(total);
  const start = process.hrtime.bigint();
  const at = (i: number) => Number(start) / 1e6 + (i * 1000) / ratePerSec;
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const running: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = at(i) - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    running.push(op(i).then(() => void (latencies[i] = now() - at(i))));
  }
  await Promise.all(running);
  return { name, ops: total, seconds: Number(process.hrtime.bigint() - start) / 1e9, latencies };
}

async function webhooksSuite(): Promise<void> {
  const { databaseUrl, redisUrl } = await backingServices();
  const { createHmac, randomBytes } = await import('node:crypto');
  const { Agent, request: httpRequest } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const key = randomBytes(32);
  // Signed as the Standard Webhooks scheme says (what the `standardwebhooks` library does).
  const post = async (url: string, i: number, run: string) => {
    const body = JSON.stringify({
      chain: 'ETH',
      txHash: `0x${run}${i.toString(16).padStart(64 - run.length, '0')}`,
      token: 'native',
      amount: String(i + 1),
      toAddress: '0x000000000000000000000000000000000000dEaD',
    });
    const id = `msg_${randomUUID()}`;
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
    // node:http with kept-alive sockets, not fetch: undici's fetch cost this process about 2 ms of CPU
    // per request on this machine, as much as the intake itself, on the same two cores (the raw
    // baseline has no HTTP client at all).
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'webhook-id': id,
            'webhook-timestamp': ts,
            'webhook-signature': `v1,${sig}`,
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    if (status !== 200) throw new Error(`delivery answered ${status}`);
  };
  const total = n(2000);

  /**
   * One deployment shape: `roles` lists the processes (each a set of WEBHOOKS_ROLES); deliveries go
   * to the processes that take them (intake role), in turn. Every delivery is processed too (an unknown address: rejected, dead-lettered), so
   * the chain-side work competes for the same two cores whichever process does it.
   */
  async function measure(label: string, roles: string[]) {
    const vhost = await fleetVhost();
    const schema = await createSchemaName('bench_webhooks');
    const env = {
      AMQP_URL: vhost.as('webhooks'),
      ...schema.env,
      REDIS_URL: redisUrl,
      LOG_LEVEL: 'error',
      WEBHOOK_SECRETS: `whsec_${key.toString('base64')}`,
      WEBHOOK_RATE_PER_MINUTE: '10000000',
      FLEET_DEV_MODE: 'true',
    };
    const procs = [];
    try {
      for (const r of roles) procs.push(await startService('webhooks', { ...env, ...profiled, WEBHOOKS_ROLES: r }));
      const urls = procs.filter((_, i) => roles[i]!.includes('intake')).map((p) => p.url('/webhooks/deposits'));
      const url = (i: number) => urls[i % urls.length]!;
      // Where the CPU of the new deliveries went, by process: on a shared machine, CPU per delivery
      // moves much less with the load than throughput does.
      const { result: full, cpu } = await withCpu(total, () =>
        runConcurrent(`${label}: new deliveries (${total}, 32 in flight)`, total, 32, (i) => post(url(i), i, 'a')),
      );
      // The latency aim is stated at half the maximum load: deliveries arrive on a fixed
      // schedule at half the rate just measured, whether or not earlier ones were answered (open
      // loop), and latency counts from the scheduled arrival, so queueing behind a slow one shows.
      const halfRate = Math.max(1, Math.round(full.ops / full.seconds / 2));
      const half = await runAtRate(`${label}: at half that rate (${halfRate}/s offered)`, total, halfRate, (i) => post(url(i), i, 'c'));
      const dup = await runConcurrent(`${label}: duplicates (${total}, 32 in flight)`, total, 32, (i) => post(url(i), i, 'a'));
      return { full, half, dup, cpu };
    } finally {
      for (const p of procs.reverse()) await p.stop();
      await vhost.drop();
      await schema.drop();
    }
  }

  const vhost = await fleetVhost();
  let raw: Measurement;
  let rawPc: Measurement;
  try {
    rawPc = await rawPublishConsume(vhost.url, n(5000));
    raw = await rawInsertThenPublish(databaseUrl, vhost.url, n(5000), 32);
  } finally {
    await vhost.drop();
  }
  // The intake alone is what absorbs a burst (processing catches up behind the queue): measured with
  // no processing process competing for the same cores; then end to end in the two other shapes.
  const alone = await measure('intake role alone', ['intake']);
  const one = await measure('one process', ['intake,processing']);
  const split = await measure('intake process', ['intake', 'processing']);
  // The intake split across processes: two intake processes, deliveries to each in turn.
  const twoIntakes = await measure('two intake processes', ['intake', 'intake']);
  const aloneRate = alone.full.ops / alone.full.seconds / (raw.ops / raw.seconds);
  const p99 = (m: Measurement) => summarize(m).p99;
  printTable('Webhook intake at the HTTP edge (signature, rate limit, durable insert, confirmed publish) beside raw INSERT + confirmed publish; same run', [
    { fleet: alone.full, raw, note: `WEBHOOKS_ROLES=intake, no processing; ${aim('>= 0.5 of raw', aloneRate >= 0.5)}` },
    { fleet: alone.half, raw, note: `the same at half its maximum rate; ${aim('p99 <= 1.5x raw p99', p99(alone.half) <= 1.5 * p99(raw))}` },
    { fleet: alone.dup, raw },
    { fleet: one.full, raw },
    { fleet: one.half, raw, note: 'open loop at half the maximum rate: the issue asks p99 < 25 ms here' },
    { fleet: one.dup, raw, note: 'same deposits again: same job ids, nothing new' },
    { fleet: split.full, raw, note: 'WEBHOOKS_ROLES=intake, a processing process beside it' },
    { fleet: split.half, raw, note: 'the same at half its maximum rate' },
    { fleet: split.dup, raw },
    { fleet: twoIntakes.full, raw, note: 'two intake processes (WEBHOOKS_ROLES=intake each), no processing' },
    { fleet: twoIntakes.half, raw },
    { fleet: one.full, raw: rawPc, note: 'against raw publish+consume throughput' },
  ]);
  printCpu('Where the CPU of the new deliveries went (all processes of the machine, from /proc; the bench process is the HTTP client)', [
    { name: alone.full.name, cpu: alone.cpu },
    { name: one.full.name, cpu: one.cpu },
    { name: split.full.name, cpu: split.cpu },
    { name: twoIntakes.full.name, cpu: twoIntakes.cpu },
  ]);
}

const suites: Record<string, () => Promise<void>> = {
  audit: auditSuite,
  rpc: rpcSuite,
  wallet: walletSuite,
  policy: policySuite,
  provisioning: provisioningSuite,
  webhooks: webhooksSuite,
};
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = wanted.filter((w) => !(w in suites));
if (unknown.length) {
  console.error(`unknown suite(s): ${unknown.join(', ')}; known: ${Object.keys(suites).join(', ')}`);
  process.exit(2);
}
const { source } = await backingServices();
console.log(`wallet-fleet benchmarks (backing services: ${source}, scale ${scale}, ${new Date().toISOString()})`);
for (const name of wanted.length ? wanted : Object.keys(suites)) await suites[name]!();
process.exit(0);
