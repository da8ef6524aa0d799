// `pnpm bench [suite ...]`: the fleet's throughput and latency beside the raw infrastructure
// measured in the same run, as ratios. Suites: audit (audit ingestion), rpc (request/response).
// Sizes scale with BENCH_SCALE (default 1).
import { randomUUID } from 'node:crypto';
import { backingServices, createSchemaName, createVhost } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { createBroker, defineTopology } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { startService } from '../e2e/support/service-process.js';
import { rawInsert, rawPublishConsume, rawRpc } from './raw.js';
import { printTable, runConcurrent, type Measurement } from './stats.js';

const scale = Number(process.env.BENCH_SCALE ?? 1);
const n = (x: number) => Math.max(10, Math.round(x * scale));
const silent = createLogger({ service: 'bench', level: 'silent' });

async function auditSuite(): Promise<void> {
  const { databaseUrl } = await backingServices();
  const vhost = await createVhost('bench');
  const schema = await createSchemaName('bench_audit');
  const total = n(20_000);
  const audit = await startService('audit', {
    AMQP_URL: vhost.url, DATABASE_URL: databaseUrl, DATABASE_SCHEMA: schema.schema, LOG_LEVEL: 'warn',
  });
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const conn = await amqp.connect(vhost.url, { noDelay: true });
  try {
    const rawPc = await rawPublishConsume(vhost.url, total);
    const rawIns = await rawInsert(databaseUrl, n(5000));

    // The fleet: the same confirmed publishing as the raw baseline, into wallet.events; done when
    // the audit chain holds every event.
    const ch = await conn.createConfirmChannel();
    const events = Array.from({ length: total }, (_, i) => ({
      eventId: randomUUID(), actor: { type: 'service', id: 'bench' }, action: 'bench.ingest',
      resource: { type: 'bench', id: String(i) }, userId: `user-${i % 100}`, status: 'success',
      after: { padding: 'x'.repeat(200) },
    }));
    const start = process.hrtime.bigint();
    let inFlight = 0;
    const waiters: Array<() => void> = [];
    for (const e of events) {
      while (inFlight >= 256) await new Promise<void>((r) => waiters.push(r));
      inFlight++;
      const body = Buffer.from(JSON.stringify({ ...e, occurredAt: new Date().toISOString() }));
      ch.publish('wallet.events', 'audit.bench.ingest', body, { persistent: true }, () => {
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
    const { rows: lat } = await db.query(
      `SELECT extract(epoch FROM recorded_at - occurred_at) * 1000 AS ms FROM "${schema.schema}".audit_events`,
    );
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
  const { databaseUrl } = await backingServices();
  const vhost = await createVhost('bench');
  const schema = await createSchemaName('bench_rpc');
  const total = n(3000);
  // The messaging runtime alone: a trivial handler, so the difference to raw is our overhead
  // (validation, correlation, context, metrics, confirms of the request are not used by RPC).
  const server = createBroker({
    url: vhost.url, service: 'bench-server', logger: silent,
    topology: defineTopology({ queues: [{ name: 'bench.commands', kind: 'rpc', bindings: [{ exchange: 'wallet.commands', pattern: 'wallet.audit.verify' }] }] }),
  });
  server.handleCommands('bench.commands', { 'wallet.audit.verify': async () => ({ valid: true, checked: 0 }) });
  const client = createBroker({ url: vhost.url, service: 'bench-client', logger: silent, topology: defineTopology({ queues: [] }) });
  await server.start();
  await client.start();
  try {
    const raw = await rawRpc(vhost.url, total);
    const fleet = await runConcurrent('fleet RPC, trivial handler', total, 1, () => client.request('wallet.audit.verify', {}));
    const raw64 = await rawRpcConcurrent(vhost.url, total * 4, 64);
    const fleet64 = await runConcurrent('fleet RPC, 64 in flight', total * 4, 64, () => client.request('wallet.audit.verify', {}));
    await server.stop();

    const audit = await startService('audit', {
      AMQP_URL: vhost.url, DATABASE_URL: databaseUrl, DATABASE_SCHEMA: schema.schema, LOG_LEVEL: 'warn',
    });
    try {
      const query = await runConcurrent('wallet.audit.query (audit process, PostgreSQL)', total, 1, () =>
        client.request('wallet.audit.query', { userId: 'nobody', limit: 10 }),
      );
      printTable('RPC round trip over direct reply-to (sequential unless noted)', [
        { fleet, raw },
        { fleet: fleet64, raw: raw64 },
        { fleet: query, raw, note: 'includes a PostgreSQL query' },
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

const suites: Record<string, () => Promise<void>> = { audit: auditSuite, rpc: rpcSuite };
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
