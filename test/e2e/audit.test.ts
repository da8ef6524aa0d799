// The audit service as another team sees it: a separate process, reached with plain amqplib and
// nothing of ours but the names in docs/asyncapi.json.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { backingServices, createFleetVhost, createSchemaName, rabbitAdmin, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { type ServiceProcess, startService } from './support/service-process.js';

/** A KMS endpoint where nothing listens: checkpoints fail (logged), storing and querying do not need KMS. */
const NO_KMS = '127.0.0.1:9';

interface Reply {
  ok: boolean;
  result?: any;
  error?: { code: string; message: string; retryable: boolean; details?: any };
}

/** What a client team writes from the AsyncAPI document: publish with correlation_id + direct reply-to. */
async function plainClient(url: string) {
  const conn = await amqp.connect(url, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  // RabbitMQ checks user_id against the connection's user; consumers refuse a message without one.
  const userId = decodeURIComponent(new URL(url).username) || 'guest';
  const pending = new Map<string, (r: Reply) => void>();
  await ch.consume(
    'amq.rabbitmq.reply-to',
    (msg) => {
      if (msg) pending.get(msg.properties.correlationId)?.(JSON.parse(msg.content.toString()));
    },
    { noAck: true },
  );
  return {
    async call(op: string, body: unknown, timeoutMs = 15_000): Promise<Reply> {
      const correlationId = randomUUID();
      const reply = new Promise<Reply>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no reply to ${op}`)), timeoutMs);
        pending.set(correlationId, (r) => {
          clearTimeout(t);
          resolve(r);
        });
      });
      ch.publish('wallet.commands', op, Buffer.from(JSON.stringify(body)), {
        correlationId,
        replyTo: 'amq.rabbitmq.reply-to',
        contentType: 'application/json',
        expiration: String(timeoutMs),
        userId,
      });
      return reply;
    },
    async publish(routingKey: string, body: unknown | Buffer): Promise<void> {
      const content = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
      ch.publish('wallet.events', routingKey, content, { persistent: true, contentType: 'application/json', userId });
      await ch.waitForConfirms();
    },
    async publishMany(items: Array<{ routingKey: string; body: unknown }>): Promise<void> {
      for (const { routingKey, body } of items) {
        if (!ch.publish('wallet.events', routingKey, Buffer.from(JSON.stringify(body)), { persistent: true, userId })) {
          await new Promise((r) => ch.once('drain', r));
        }
      }
      await ch.waitForConfirms();
    },
    close: () => conn.close(),
  };
}

/** An audit event of the product's backend: the key names its publisher (`audit.<role>.<action>`). */
const KYC_REVIEW = 'audit.backend.kyc.review';

function auditEvent(userId: string, i = 0) {
  return {
    eventId: randomUUID(),
    occurredAt: new Date(Date.UTC(2026, 10, 23, 10, 0, i)).toISOString(),
    actor: { type: 'service', id: 'backend' },
    action: 'kyc.review',
    resource: { type: 'user', id: userId },
    userId,
    status: i % 5 === 0 ? 'failed' : 'success',
    ...(i % 5 === 0 ? { error: { code: 'DOCUMENT_EXPIRED', message: 'passport expired' } } : {}),
    correlationId: `corr-${i}`,
  };
}

describe('audit service over plain amqplib', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let env: Record<string, string>;
  let service: ServiceProcess | undefined;
  /** The product's backend: publishes its audit events, queries the log. */
  let client: Awaited<ReturnType<typeof plainClient>>;
  /** An operator: verifies the chain. */
  let ops: Awaited<ReturnType<typeof plainClient>>;
  let db: pg.Pool;

  const storedCount = async () => Number((await db.query(`SELECT count(*) AS n FROM "${schema.schema}".audit_events`)).rows[0].n);

  beforeEach(async () => {
    vhost = await createFleetVhost('audit-e2e');
    schema = await createSchemaName('audit_e2e');
    const { databaseUrl, redisUrl } = await backingServices();
    env = {
      AMQP_URL: vhost.as('audit'),
      // Checkpoints are tested in services/audit/test/checkpoint.test.ts; nothing listens here.
      KMS_ENDPOINT: NO_KMS,
      ...schema.env,
      REDIS_URL: redisUrl,
      AUDIT_RETRY_INITIAL_DELAY_MS: '20',
      AUDIT_RETRY_MAX_DELAY_MS: '100',
      AUDIT_RETRY_MAX_ATTEMPTS: '3',
    };
    service = await startService('audit', env);
    client = await plainClient(vhost.as('backend'));
    ops = await plainClient(vhost.as('ops'));
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  });

  afterEach(async () => {
    await client?.close().catch(() => undefined);
    await ops?.close().catch(() => undefined);
    await service?.stop();
    await db?.end();
    await vhost?.drop();
    await schema?.drop();
  });

  it('should store published events once and answer queries and verify', async () => {
    const alice = `alice-${randomUUID()}`;
    const events = Array.from({ length: 12 }, (_, i) => auditEvent(alice, i));
    // Every event twice, as an at-least-once publisher would after a lost confirm.
    await client.publishMany([...events, ...events].map((body) => ({ routingKey: KYC_REVIEW, body })));
    await client.publish('audit.backend.user.update', auditEvent('bob'));

    const page1 = await waitFor(
      async () => {
        const r = await client.call('wallet.audit.query', { userId: alice, limit: 5 });
        return r.ok && r.result.items.length === 5 && (await storedCount()) === 13 ? r : undefined;
      },
      { what: '13 stored events' },
    );
    assert.deepEqual(
      page1.result.items.map((e: any) => e.eventId),
      events
        .slice(-5)
        .map((e) => e.eventId)
        .reverse(),
    );
    const page2 = await client.call('wallet.audit.query', { userId: alice, limit: 50, cursor: page1.result.nextCursor });
    assert.equal(page2.result.items.length, 7);
    assert.equal(page2.result.nextCursor, null);
    assert.deepEqual(page2.result.items.at(-1).error, { code: 'DOCUMENT_EXPIRED', message: 'passport expired' });

    const failed = await client.call('wallet.audit.query', { resourceType: 'user', resourceId: alice, limit: 50 });
    assert.equal(failed.result.items.length, 12);

    const verify = await ops.call('wallet.audit.verify', {});
    assert.deepEqual(verify, { ok: true, result: { valid: true, checked: 13 } });
  });

  it('should answer a bad query with VALIDATION_FAILED naming the field', async () => {
    const r = await client.call('wallet.audit.query', { limit: 10_000, from: 'yesterday' });
    assert.equal(r.ok, false);
    assert.equal(r.error?.code, 'VALIDATION_FAILED');
    assert.equal(r.error?.retryable, false);
    assert.deepEqual(r.error?.details.fields.map((f: any) => f.path).sort(), ['from', 'limit']);
  });

  it('should dead-letter malformed and schema-violating events with the reason, and keep running', async () => {
    await client.publish(KYC_REVIEW, Buffer.from('{"eventId": '));
    await client.publish(KYC_REVIEW, { eventId: 'not-a-uuid', action: 'x' });
    // The management API's queue counts lag by seconds; taking the messages off the queue does not.
    const dead: Awaited<ReturnType<typeof rabbitAdmin.drain>> = [];
    await waitFor(
      async () => {
        dead.push(...(await rabbitAdmin.drain(vhost.vhost, 'audit.events.dlq', 10)));
        return dead.length >= 2;
      },
      { what: 'two dead letters' },
    );
    const reasons = dead.map((m) => m.properties.headers?.['x-death-reason']).sort();
    assert.deepEqual(reasons, ['malformed_json', 'validation']);
    const invalid = dead.find((m) => m.properties.headers?.['x-death-reason'] === 'validation');
    assert.match(String(invalid?.properties.headers?.['x-error-message']), /eventId/);
    const ready = await fetch(service!.url('/ready'));
    assert.equal(ready.status, 200);
    assert.equal(await storedCount(), 0);
  });

  it('should detect a tampered row through wallet.audit.verify', async () => {
    const events = Array.from({ length: 6 }, (_, i) => auditEvent('carol', i));
    await client.publishMany(events.map((body) => ({ routingKey: KYC_REVIEW, body })));
    await waitFor(async () => (await storedCount()) === 6, { what: 'six stored events' });
    const table = `"${schema.schema}".audit_events`;
    const c = await db.connect();
    try {
      await c.query('BEGIN');
      await c.query(`ALTER TABLE ${table} DISABLE TRIGGER audit_events_append_only`);
      await c.query(`UPDATE ${table} SET payload = replace(payload, '"success"', '"failed"') WHERE sequence = 3`);
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const r = await ops.call('wallet.audit.verify', {});
    assert.equal(r.ok, true);
    assert.equal(r.result.valid, false);
    assert.equal(r.result.brokenAt, 3);
    assert.equal(r.result.checked, 2);
  });

  it('should lose nothing when SIGTERM arrives during a burst', async () => {
    const total = 3000;
    const events = Array.from({ length: total }, (_, i) => auditEvent(`burst-${i % 50}`, i));
    const publishing = client.publishMany(events.map((body) => ({ routingKey: KYC_REVIEW, body })));
    await waitFor(async () => (await storedCount()) > 0, { what: 'the first stored events' });
    const code = await service!.stop();
    assert.equal(code, 0, `audit exited with ${code}:\n${service!.logs.slice(-10).join('\n')}`);
    await publishing;
    const afterStop = await storedCount();
    if (process.env.DEBUG_E2E) console.log(`stored at stop: ${afterStop}/${total}`);
    service = await startService('audit', env);
    await waitFor(async () => (await storedCount()) === total, { timeoutMs: 30_000, what: `${total} stored events (had ${afterStop} at stop)` });
    const verify = await ops.call('wallet.audit.verify', {});
    assert.deepEqual(verify.result, { valid: true, checked: total });
    assert.deepEqual(await rabbitAdmin.drain(vhost.vhost, 'audit.events.dlq', 10), []);
  });
});

describe('audit service process', function () {
  this.timeout(30_000);

  it('should refuse to start on a malformed variable, naming it, before connecting anywhere', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['services/audit/dist/main.js'], {
      env: { ...process.env, HTTP_PORT: 'eighty', MIGRATE: 'yes', AMQP_URL: 'http://nope' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 78);
    for (const variable of ['HTTP_PORT', 'MIGRATE', 'AMQP_URL']) assert.match(stderr, new RegExp(variable));
  });

  it('should expose probes and metrics of what it stored', async () => {
    const vhost = await createFleetVhost('audit-metrics');
    const schema = await createSchemaName('audit_metrics');
    const service = await startService('audit', { AMQP_URL: vhost.as('audit'), KMS_ENDPOINT: NO_KMS, ...schema.env });
    const client = await plainClient(vhost.as('backend'));
    try {
      assert.equal((await fetch(service.url('/live'))).status, 200);
      const health = (await (await fetch(service.url('/health'))).json()) as Record<string, unknown>;
      assert.match(JSON.stringify(health), /postgres/);
      assert.match(JSON.stringify(health), /rabbitmq/);
      assert.match(JSON.stringify(health), /redis/);
      const e = auditEvent('dave');
      await client.publishMany([e, e, auditEvent('dave', 1)].map((body) => ({ routingKey: KYC_REVIEW, body })));
      const text = await waitFor(
        async () => {
          const t = await (await fetch(service.url('/metrics'))).text();
          return /audit_events_duplicate_total(\{[^}]*\})? 1\b/.test(t) ? t : undefined;
        },
        { what: 'the duplicate counted in /metrics' },
      );
      assert.match(text, /audit_events_stored_total(\{[^}]*\})? 2\b/);
      assert.match(text, /audit_chain_length(\{[^}]*\})? 2\b/);
      assert.match(text, /messaging_/);
      assert.match(text, /process_cpu_seconds_total/);
      assert.doesNotMatch(text, /guest:guest/);
    } finally {
      await client.close();
      await service.stop();
      await vhost.drop();
      await schema.drop();
    }
  });
});
