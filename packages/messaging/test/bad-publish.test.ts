import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ErrorCode, Exchanges, FleetError, isFleetError } from '@wallet-fleet/contracts';
import { createSchemaName, waitFor, type TestSchema, type TestVhost } from '@wallet-fleet/testing';
import pg from 'pg';
import { Registry } from 'prom-client';
import { createOutbox, defineTopology, outboxTableSql, type Broker, type Outbox } from '@wallet-fleet/messaging';
import { applyTopology, broker, cleanup, depth, eachTestInFreshVhost, freshVhost, logger, rawChannel, takeAll, deposit } from './support.js';

// An events consumer holding one message unacked, and an RPC server, beside the publishes under test:
// a bad publish must cost neither (no requeue, no reconnect).
const topology = defineTopology({
  queues: [
    { name: 'held.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] },
    { name: 'audit.commands', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.audit.verify' }] },
  ],
});

async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const values = (await m.get()).values.filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return values.reduce((n, v) => n + v.value, 0);
}

describe('messaging: publishes the broker refuses', () => {
  let vhost: TestVhost;
  let registry: Registry;
  let b: Broker;
  let deliveries: number;
  let release: () => void;

  beforeEach(async () => {
    vhost = await freshVhost();
    registry = new Registry();
    b = broker(vhost, topology, { registry });
    deliveries = 0;
    const held = new Promise<void>((r) => (release = r));
    b.handleEvents('held.events', {
      'kyc.approved': async () => {
        deliveries++;
        await held;
      },
    });
    b.handleCommands('audit.commands', { 'wallet.audit.verify': async () => ({ valid: true, checked: 1 }) });
    await b.start();
    const ch = await rawChannel(vhost);
    await ch.assertQueue('sink', { durable: true });
    await ch.bindQueue('sink', Exchanges.events, 'deposit.#');
    await b.publishEvent('kyc.approved', { userId: 'u-held', chains: ['SOL'] });
    await waitFor(() => deliveries === 1, { what: 'the consumer holding one message' });
  });
  afterEach(async () => {
    release();
    await cleanup();
    await vhost.drop();
  });

  /** What must hold after any bad publish: same session, consumer's message never requeued, RPC works. */
  async function sessionUntouched(): Promise<void> {
    assert.deepEqual(await b.request('wallet.audit.verify', {}), { valid: true, checked: 1 });
    assert.equal(await metric(registry, 'messaging_reconnects_total'), 0, 'the connection was never recycled');
    release();
    await waitFor(async () => (await depth(vhost, 'held.events')) === 0, { what: 'the held message acked' });
    assert.equal(deliveries, 1, 'the unacked message was not requeued and delivered again');
  }

  it('should fail a publish to a missing exchange with NOT_FOUND and reopen only the publisher channel', async () => {
    const inFlight = Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        b.publishEvent('deposit.received', deposit(i)).then(
          () => 'ok',
          (e: unknown) => e,
        ),
      ),
    );
    const bad = await b.publish('no.such.exchange', 'x', Buffer.from('{}')).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isFleetError(bad, ErrorCode.NOT_FOUND), String(bad));
    assert.equal(bad.retryable, false);
    assert.match(bad.message, /no\.such\.exchange/);
    // Events that shared the channel with it were confirmed, or failed retryably (nothing lost silently).
    for (const r of await inFlight) {
      if (r !== 'ok') assert.ok(isFleetError(r, ErrorCode.UNAVAILABLE) && r.retryable, String(r));
    }
    await b.publishEvent('deposit.received', deposit(999));
    assert.ok((await depth(vhost, 'sink')) >= 1);
    assert.ok((await metric(registry, 'messaging_published_total', { outcome: 'refused' })) >= 1);
    await sessionUntouched();
  });

  it('should refuse an RPC timeoutMs that is not a whole number before sending, and a fractional expiration', async () => {
    const err = await b.request('wallet.audit.verify', {}, { timeoutMs: 1500.5 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isFleetError(err, ErrorCode.VALIDATION_FAILED), String(err));
    assert.match(err.message, /timeoutMs/);
    const raw = await b.publish(Exchanges.events, 'deposit.received', Buffer.from('{}'), { expiration: '1500.5' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isFleetError(raw, ErrorCode.VALIDATION_FAILED), String(raw));
    assert.match(raw.message, /expiration/);
    await sessionUntouched();
  });

  describe('from the outbox', () => {
    let db: TestSchema;
    let pool: pg.Pool;
    let outbox: Outbox;
    beforeEach(async () => {
      db = await createSchemaName('outbox_bad');
      pool = new pg.Pool({ connectionString: db.databaseUrl, max: 4 });
      await pool.query(outboxTableSql(db.schema));
      outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, registry, pollIntervalMs: 20, batchSize: 10, maxAttempts: 3 });
    });
    afterEach(async () => {
      await outbox.stop();
      await pool.end();
      await db.drop();
    });

    it('should set aside a row naming a missing exchange after its refusals, and publish every row behind it', async () => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await outbox.enqueue(client, { routingKey: 'deposit.received', payload: deposit(1), messageId: 'before' });
        // Raw messages outside wallet.events are not checked against the catalogue at enqueue.
        await outbox.enqueue(client, { exchange: 'gone.exchange', routingKey: 'x', payload: { a: 1 }, messageId: 'poison' });
        await outbox.enqueue(
          client,
          Array.from({ length: 25 }, (_, i) => ({ routingKey: 'deposit.received', payload: deposit(10 + i), messageId: `after-${i}` })),
        );
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      await outbox.start();
      await waitFor(async () => Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox WHERE failed_at IS NULL`)).rows[0].count) === 0, {
        what: 'every row published or set aside',
      });
      const left = (await pool.query(`SELECT message_id, attempts, failed_at, last_error FROM ${db.schema}.outbox`)).rows;
      assert.equal(left.length, 1);
      assert.equal(left[0].message_id, 'poison');
      assert.equal(left[0].attempts, 3);
      assert.ok(left[0].failed_at instanceof Date);
      assert.match(left[0].last_error, /NOT_FOUND: .*gone\.exchange/);
      // At least once: a row unconfirmed on the channel the broker closed is published again.
      const ids = new Set((await takeAll(vhost, 'sink')).map((m) => m.properties.messageId as string));
      assert.deepEqual([...ids].sort(), ['before', ...Array.from({ length: 25 }, (_, i) => `after-${i}`)].sort());
      assert.equal(await metric(registry, 'messaging_outbox_relayed_total', { outcome: 'set_aside' }), 1);
      assert.equal(await metric(registry, 'messaging_outbox_relayed_total', { outcome: 'refused' }), 3);
      await sessionUntouched();
    });

    it('should set aside at once a row whose message the broker could never take, publishing its neighbours', async () => {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await outbox.enqueue(client, [
          { routingKey: 'deposit.received', payload: deposit(1), messageId: 'ok-1' },
          // An AMQP short string holds 255 bytes: the message id cannot be sent.
          { routingKey: 'deposit.received', payload: deposit(2), messageId: `m-${'x'.repeat(300)}` },
          { routingKey: 'deposit.received', payload: deposit(3), messageId: randomUUID() },
        ]);
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      assert.equal(await outbox.flush(), 2);
      const left = (await pool.query(`SELECT attempts, failed_at, last_error FROM ${db.schema}.outbox`)).rows;
      assert.equal(left.length, 1);
      assert.ok(left[0].failed_at instanceof Date, 'set aside on the first failure');
      assert.match(left[0].last_error, /VALIDATION_FAILED: .*messageId/);
      assert.equal(await depth(vhost, 'sink'), 2);
      await sessionUntouched();
    });
  });
});

describe('messaging: retry and dead-letter copies', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should keep a message whose delay tier was deleted instead of acking it after a dropped copy', async () => {
    const topology = defineTopology({
      queues: [
        {
          name: 'flaky.events',
          kind: 'events',
          bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }],
          retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 10, jitter: 0 },
          deliveryLimit: 3,
        },
      ],
      delayTiers: [10],
    });
    // The delivery limit is a policy of the definitions.
    await applyTopology(vhost, topology);
    const b = broker(vhost, topology);
    let calls = 0;
    b.handleEvents('flaky.events', {
      'kyc.approved': async () => {
        calls++;
        throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'dependency down');
      },
    });
    await b.start();
    const ch = await rawChannel(vhost);
    await ch.deleteQueue('flaky.delay.10');
    await b.publishEvent('kyc.approved', { userId: 'u-1', chains: ['SOL'] });
    // The copy cannot be routed, so the original goes back to its queue each time, until the
    // broker's delivery limit dead-letters it: it ends in the DLQ, never dropped.
    await waitFor(async () => (await depth(vhost, 'flaky.events.dlq')) === 1, { what: 'the message in the DLQ' });
    assert.ok(calls >= 2, `handled ${calls} times`);
  });
});
