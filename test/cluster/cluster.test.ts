// The fleet on a RabbitMQ cluster (issue 14): audit and wallet as their own processes with
// AMQP_URL listing the three nodes of a local cluster (test/cluster/rabbit-cluster.ts); the node
// holding the quorum queues' leaders is killed with SIGKILL in the middle of a burst of audit events
// and RPC calls. Nothing confirmed is lost or stored twice, every call ends with a code the
// catalogue lists, and the services carry on on a surviving node without restarting. About 2 min,
// most of it starting the cluster (how to run it alone: docs/operations.md, "Messaging under faults").
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ErrorCode, operations, type OperationName } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import { backingServices, createSchemaName, type LocalCluster, startLocalCluster, type TestSchema, waitFor } from '@wallet-fleet/testing';
import amqp, { type ConfirmChannel } from 'amqplib';
import pg from 'pg';
import { type ServiceProcess, startService } from '../e2e/support/service-process.js';

const DEFINITIONS = fileURLToPath(new URL('../../infra/rabbitmq/definitions.json', import.meta.url));
const EVENTS = 5000;
const CALLS = 1000;
/** When this many events are confirmed the calls start; the leaders' node is killed as call KILL_AT_CALL goes out. */
const CALLS_AT = 1000;
const KILL_AT_CALL = 300;

interface Reply {
  ok: boolean;
  result?: any;
  error?: { code: string; message: string };
}

/** A caller as another team writes it: plain amqplib on one node, direct reply-to, mandatory, a deadline of its own. */
async function plainCaller(url: string, user: string) {
  const conn = await amqp.connect(url, { noDelay: true });
  conn.on('error', () => undefined);
  const ch = await conn.createChannel();
  const pending = new Map<string, (r: Reply) => void>();
  await ch.consume('amq.rabbitmq.reply-to', (m) => m && pending.get(m.properties.correlationId)?.(JSON.parse(m.content.toString())), { noAck: true });
  ch.on('return', (m) => pending.get(m.properties.correlationId)?.({ ok: false, error: { code: ErrorCode.UNROUTABLE, message: 'returned' } }));
  return {
    call(op: OperationName, body: unknown, timeoutMs = 10_000): Promise<Reply> {
      const correlationId = randomUUID();
      return new Promise<Reply>((resolve) => {
        const t = setTimeout(() => done({ ok: false, error: { code: ErrorCode.TIMEOUT, message: 'no reply (client deadline)' } }), timeoutMs);
        function done(r: Reply) {
          clearTimeout(t);
          pending.delete(correlationId);
          resolve(r);
        }
        pending.set(correlationId, done);
        ch.publish('wallet.commands', op, Buffer.from(JSON.stringify(body)), {
          correlationId,
          replyTo: 'amq.rabbitmq.reply-to',
          contentType: 'application/json',
          expiration: String(timeoutMs),
          mandatory: true,
          userId: user,
        });
      });
    },
    close: () => conn.close().catch(() => undefined),
  };
}

/** An audit event of the product's backend. */
function auditEvent(i: number) {
  return {
    eventId: randomUUID(),
    occurredAt: new Date(Date.UTC(2026, 11, 1, 0, 0, 0, i)).toISOString(),
    actor: { type: 'service', id: 'backend' },
    action: 'kyc.review',
    resource: { type: 'user', id: `cluster-${i % 40}` },
    userId: `cluster-${i % 40}`,
    status: 'success',
  };
}

/** Publishes with confirms; a nacked or lost publish is sent again (same eventId) until confirmed, as an at-least-once publisher does. */
async function publishAll(url: string, events: Array<ReturnType<typeof auditEvent>>, onConfirmed: (n: number) => void): Promise<{ resent: number }> {
  let confirmed = 0;
  let resent = 0;
  let todo = events;
  let ch: ConfirmChannel | undefined;
  const conns: amqp.ChannelModel[] = [];
  const deadline = Date.now() + 90_000;
  while (todo.length > 0) {
    if (Date.now() > deadline) throw new Error(`${todo.length} events still unconfirmed after 90 s`);
    try {
      if (!ch) {
        const conn = await amqp.connect(url, { noDelay: true });
        conn.on('error', () => undefined);
        conns.push(conn);
        ch = await conn.createConfirmChannel();
        ch.on('error', () => undefined);
      }
      const c = ch;
      const failed: typeof todo = [];
      // 50 at a time: the burst stays in flight long enough for the kill to land in its middle.
      for (let i = 0; i < todo.length; i += 50) {
        const chunk = todo.slice(i, i + 50);
        const results = await Promise.all(
          chunk.map(
            (e) =>
              new Promise<boolean>((resolve) => {
                const t = setTimeout(() => resolve(false), 20_000);
                c.publish('wallet.events', 'audit.backend.kyc.review', Buffer.from(JSON.stringify(e)), { persistent: true, userId: 'backend' }, (err) => {
                  clearTimeout(t);
                  resolve(!err);
                });
              }),
          ),
        );
        for (const [j, e] of chunk.entries()) {
          if (results[j]) confirmed += 1;
          else failed.push(e);
        }
        onConfirmed(confirmed);
      }
      resent += failed.length;
      todo = failed;
    } catch {
      // The channel or connection died under the publish: what was not confirmed goes again.
      ch = undefined;
    }
  }
  await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
  return { resent };
}

describe('the fleet on a 3-node RabbitMQ cluster, the leaders’ node killed mid-burst', function () {
  this.timeout(300_000);
  let cluster: LocalCluster | undefined;
  let auditSchema: TestSchema | undefined;
  let walletSchema: TestSchema | undefined;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>> | undefined;
  let audit: ServiceProcess | undefined;
  let wallet: ServiceProcess | undefined;
  let db: pg.Pool | undefined;

  before(async function () {
    this.timeout(180_000);
    cluster = await startLocalCluster(DEFINITIONS);
    auditSchema = await createSchemaName('audit_cluster');
    walletSchema = await createSchemaName('wallet_cluster');
    kms = await startKmsEmulator({ port: 0 });
    const { databaseUrl, redisUrl } = await backingServices();
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    // Both list the nodes in the same order: they connect to the first, where their quorum queues' leaders are then placed.
    audit = await startService(
      'audit',
      { AMQP_URL: cluster.urls('audit'), KMS_ENDPOINT: '127.0.0.1:9', ...auditSchema.env, REDIS_URL: redisUrl, LOG_LEVEL: 'warn' },
      { readyTimeoutMs: 60_000 },
    );
    wallet = await startService(
      'wallet',
      {
        AMQP_URL: cluster.urls('wallet'),
        KMS_ENDPOINT: kms.endpoint,
        ...walletSchema.env,
        REDIS_URL: redisUrl,
        SOLANA_RPC_URL: 'http://127.0.0.1:9',
        EVM_RPC_URL: 'http://127.0.0.1:9',
        APTOS_NODE_URL: 'http://127.0.0.1:9/v1',
        WALLET_KEY_POOL_SIZE: '0',
        LOG_LEVEL: 'warn',
      },
      { readyTimeoutMs: 60_000 },
    );
  });

  after(async function () {
    this.timeout(120_000);
    await audit?.stop();
    await wallet?.stop();
    await kms?.stop();
    await db?.end();
    await auditSchema?.drop();
    await walletSchema?.drop();
    await cluster?.stop();
  });

  it('should store every confirmed event once, answer every call with a listed code and carry on without a restart', async () => {
    const c = cluster!;
    const [leaders, second, third] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0], (typeof c.nodes)[0]];
    // Quorum queues replicated on all three nodes, leaders where the services connected.
    const queues = (await leaders.ctl('list_queues', '-q', '--no-table-headers', 'name', 'type', 'leader', 'members'))
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    for (const q of ['audit.events', 'audit.commands', 'wallet.requests']) {
      const row = queues.find((r) => r[0] === q);
      assert.ok(row, `queue ${q} declared: ${JSON.stringify(queues)}`);
      assert.equal(row[1], 'quorum', `${q} is a quorum queue`);
      assert.equal(row[2], leaders.node, `${q}'s leader is on the first node`);
      for (const n of c.nodes) assert.match(row[3]!, new RegExp(n.node), `${q} has a member on ${n.node}`);
    }
    const pids = { audit: audit!.child.pid, wallet: wallet!.child.pid };

    // The clients sit on the surviving nodes: what is under test is the services' failover.
    const backend = await plainCaller(c.urls('backend', 2).split(',')[0]!, 'backend');
    const ops = await plainCaller(c.urls('ops', 1).split(',')[0]!, 'ops');
    const events = Array.from({ length: EVENTS }, (_, i) => auditEvent(i));
    // The calls start once part of the events is in; the node dies when a third of the calls are out.
    let killed = false;
    let startCalls: () => void = () => undefined;
    const callsMayStart = new Promise<void>((resolve) => (startCalls = resolve));
    const publishing = publishAll(c.urls('backend', 1).split(',')[0]!, events, (n) => n >= CALLS_AT && startCalls());

    const ops1000: OperationName[] = ['wallet.audit.query', 'wallet.management.list'];
    const outcomes = new Map<string, number>();
    let next = 0;
    const callers = Array.from({ length: 16 }, async () => {
      await callsMayStart;
      while (next < CALLS) {
        const i = next++;
        if (i === KILL_AT_CALL) {
          killed = true;
          leaders.kill();
        }
        const op = ops1000[i % 2]!;
        const r = await backend.call(op, op === 'wallet.audit.query' ? { userId: `cluster-${i % 40}`, limit: 5 } : { userId: `cluster-${i % 40}` });
        const code = r.ok ? 'ok' : r.error!.code;
        const listed = [...operations[op].errors, ErrorCode.UNROUTABLE, 'ok'] as readonly string[];
        assert.ok(listed.includes(code), `${op} answered ${code}, which the catalogue does not list: ${JSON.stringify(r)}`);
        outcomes.set(`${op} ${code}`, (outcomes.get(`${op} ${code}`) ?? 0) + 1);
      }
    });
    const t0 = Date.now();
    const { resent } = await publishing;
    await Promise.all(callers);
    assert.ok(killed, 'the node was killed during the burst');
    if (process.env.DEBUG_E2E) console.log({ resent, outcomes: Object.fromEntries(outcomes), burstMs: Date.now() - t0 });

    const table = `"${auditSchema!.schema}".audit_events`;
    const stored = await waitFor(
      async () => {
        const r = await db!.query(`SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS d FROM ${table}`);
        return r.rows[0].n >= EVENTS ? r.rows[0] : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: `${EVENTS} stored events` },
    );
    assert.deepEqual(stored, { n: EVENTS, d: EVENTS }, 'every event stored exactly once');
    const ids = new Set((await db!.query(`SELECT event_id FROM ${table}`)).rows.map((r) => String(r.event_id)));
    assert.equal(events.filter((e) => !ids.has(e.eventId)).length, 0, 'every confirmed event is among the stored');

    // Reconnected to a surviving node, same processes.
    assert.equal(audit!.child.pid, pids.audit);
    assert.equal(wallet!.child.pid, pids.wallet);
    assert.equal(audit!.child.exitCode, null, 'audit still running');
    assert.equal(wallet!.child.exitCode, null, 'wallet still running');
    await waitFor(async () => (await fetch(audit!.url('/ready'))).status === 200 && (await fetch(wallet!.url('/ready'))).status === 200, {
      timeoutMs: 30_000,
      what: 'both services ready again',
    });
    const moved = (await second.ctl('list_queues', '-q', '--no-table-headers', 'name', 'leader'))
      .trim()
      .split('\n')
      .map((l) => l.split('\t'));
    for (const q of ['audit.events', 'audit.commands', 'wallet.requests']) {
      const leader = moved.find((r) => r[0] === q)?.[1];
      assert.ok(leader === second.node || leader === third.node, `${q}'s leader moved to a surviving node (${leader})`);
    }
    const users = [
      ...(await second.ctl('list_connections', '-q', '--no-table-headers', 'user')).split('\n'),
      ...(await third.ctl('list_connections', '-q', '--no-table-headers', 'user')).split('\n'),
    ].map((u) => u.trim());
    assert.ok(users.includes('audit') && users.includes('wallet'), `services connected to the surviving nodes: ${users.join(',')}`);
    const after = await waitFor(
      async () => {
        const r = await backend.call('wallet.management.list', { userId: 'cluster-after' });
        return r.ok ? r : undefined;
      },
      { timeoutMs: 30_000, what: 'a call served after the failover' },
    );
    assert.deepEqual(after.result, { items: [] });
    const verify = await ops.call('wallet.audit.verify', {}, 60_000);
    assert.deepEqual(verify, { ok: true, result: { valid: true, checked: EVENTS } });
    await backend.close();
    await ops.close();
  });
});
