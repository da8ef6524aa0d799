import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ErrorCode, Exchanges, Headers, isFleetError } from '@wallet-fleet/contracts';
import { inTransaction, runWithContext } from '@wallet-fleet/service-kit';
import { createSchemaName, waitFor, type TestSchema, type TestVhost } from '@wallet-fleet/testing';
import pg from 'pg';
import { Registry } from 'prom-client';
import { createOutbox, defineTopology, outboxTableSql, type Outbox } from '@wallet-fleet/messaging';
import { broker, cleanup, depth, freshVhost, logger, rawChannel, takeAll, text, deposit } from './support.js';

describe('messaging: transactional outbox', () => {
  let vhost: TestVhost;
  let db: TestSchema;
  let pool: pg.Pool;
  const relays: Outbox[] = [];

  beforeEach(async () => {
    vhost = await freshVhost();
    db = await createSchemaName('outbox');
    pool = new pg.Pool({ connectionString: db.databaseUrl, max: 12 });
    await pool.query(outboxTableSql(db.schema));
    await pool.query(outboxTableSql(db.schema)); // idempotent DDL
    const ch = await rawChannel(vhost);
    await ch.assertExchange(Exchanges.events, 'topic', { durable: true });
    await ch.assertQueue('sink', { durable: true });
    await ch.bindQueue('sink', Exchanges.events, 'deposit.#');
  });
  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await cleanup();
    await pool.end();
    await db.drop();
    await vhost.drop();
  });

  async function inTx(fn: (c: pg.PoolClient) => Promise<void>, commit = true): Promise<void> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      await fn(c);
      await c.query(commit ? 'COMMIT' : 'ROLLBACK');
    } finally {
      c.release();
    }
  }

  it('should publish committed rows exactly once with three relays at once, and never rolled-back ones', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    // One registry for the three relays: their counter adds up what all of them published.
    const registry = new Registry();
    const mk = () => createOutbox({ pool, schema: db.schema, broker: b, logger, registry, pollIntervalMs: 20, batchSize: 25 });
    const outboxes = [mk(), mk(), mk()];
    relays.push(...outboxes);
    const committed: string[] = [];
    for (let t = 0; t < 6; t++) {
      const batch = Array.from({ length: 50 }, (_, i) => ({ routingKey: 'deposit.received', payload: deposit(t * 50 + i), messageId: randomUUID() }));
      committed.push(...batch.map((m) => m.messageId));
      await inTx((c) => outboxes[0]!.enqueue(c, batch));
    }
    const rolledBack = Array.from({ length: 40 }, (_, i) => ({ routingKey: 'deposit.received', payload: deposit(1000 + i), messageId: `rb-${i}` }));
    await inTx((c) => outboxes[0]!.enqueue(c, rolledBack), false);
    // All three relays race over the same rows: background passes plus explicit flushes.
    await Promise.all(outboxes.map((o) => o.start()));
    const flushed = await Promise.all(outboxes.map((o) => o.flush()));
    await waitFor(async () => Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count) === 0, { what: 'an empty outbox' });
    await Promise.all(outboxes.map((o) => o.stop()));
    const relayed = await registry.getSingleMetric('messaging_outbox_relayed_total')!.get();
    const published = relayed.values.find((v) => v.labels.outcome === 'published')?.value;
    assert.equal(published, committed.length, 'the relays together published each committed row once');
    // The flushes raced the background passes: what they report is their share, never more than all.
    const byFlushes = flushed.reduce((a, n) => a + n, 0);
    assert.ok(byFlushes <= committed.length, `flushes reported ${byFlushes} of ${committed.length}`);
    // Every publish was confirmed before its row was deleted, so the sink holds them all now.
    assert.equal(await depth(vhost, 'sink'), committed.length);
    const got = (await takeAll(vhost, 'sink')).map((m) => m.properties.messageId as string);
    assert.equal(new Set(got).size, got.length, 'no row published twice');
    assert.deepEqual([...got].sort(), [...committed].sort());
    assert.ok(!got.some((id) => id.startsWith('rb-')), 'rolled-back rows are never published');
  });

  it('should be woken by NOTIFY at commit and send the work context as headers', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    // A poll interval far beyond the test's patience: only NOTIFY can get the row out in time.
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, pollIntervalMs: 600_000 });
    relays.push(outbox);
    await outbox.start();
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await runWithContext({ correlationId: 'corr-outbox', traceparent }, () =>
      inTx((c) => outbox.enqueue(c, { routingKey: 'deposit.received', payload: deposit(1), messageId: 'm-1', headers: { 'x-tenant': 't1' } })),
    );
    await waitFor(async () => (await depth(vhost, 'sink')) === 1, { what: 'the relayed message' });
    const [m] = await takeAll(vhost, 'sink');
    assert.equal(m!.properties.messageId, 'm-1');
    assert.equal(m!.fields.routingKey, 'deposit.received');
    assert.deepEqual(JSON.parse(m!.content.toString()), deposit(1));
    const h = m!.properties.headers!;
    assert.equal(text(h['x-correlation-id']), 'corr-outbox');
    assert.equal(text(h[Headers.traceparent]), traceparent);
    assert.equal(text(h['x-tenant']), 't1');
  });

  it("should relay its own process's rows at commit without a NOTIFY, and NOTIFY when no relay runs where they are written", async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    const relayed = (r: Registry) => async () =>
      (await r.getSingleMetric('messaging_outbox_relayed_total')!.get()).values.find((v) => v.labels.outcome === 'published')?.value ?? 0;
    // Two processes' relays, neither of which polls within the test's patience.
    const here = new Registry();
    const elsewhere = new Registry();
    const local = createOutbox({ pool, schema: db.schema, broker: b, logger, registry: here, pollIntervalMs: 600_000 });
    const remote = createOutbox({ pool, schema: db.schema, broker: b, logger, registry: elsewhere, pollIntervalMs: 600_000 });
    relays.push(local, remote);
    await Promise.all([local.start(), remote.start()]);
    const listener = await pool.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    try {
      await listener.query(`LISTEN "outbox_${db.schema}"`);
      await inTransaction(pool, (c) => local.enqueue(c, { routingKey: 'deposit.received', payload: deposit(1), messageId: 'local-1' }));
      // The counter moves once the pass has committed its delete, after the broker's confirm.
      await waitFor(async () => (await relayed(here)()) === 1, { what: 'the row relayed by its own process' });
      assert.equal(await depth(vhost, 'sink'), 1);
      assert.equal(await relayed(elsewhere)(), 0);
      // Notifications reach a listener in commit order: once a marker sent now arrives, any NOTIFY of
      // the commit above would have arrived before it.
      await pool.query(`SELECT pg_notify('outbox_${db.schema}', 'marker')`);
      await waitFor(() => heard.includes('marker'), { what: 'the marker notification' });
      assert.deepEqual(heard, ['marker'], 'the commit carried no NOTIFY');

      // A writer whose relay is not running (a one-off process): its commit wakes the others.
      const writerOnly = createOutbox({ pool, schema: db.schema, broker: b, logger, registry: new Registry() });
      await inTransaction(pool, (c) => writerOnly.enqueue(c, { routingKey: 'deposit.received', payload: deposit(2), messageId: 'remote-2' }));
      await waitFor(async () => (await relayed(here)()) + (await relayed(elsewhere)()) === 2, { what: 'the row relayed on NOTIFY' });
      assert.equal(await depth(vhost, 'sink'), 2);
      assert.ok(heard.length > 1, 'that commit carried a NOTIFY');
    } finally {
      await listener.query(`UNLISTEN "outbox_${db.schema}"`).catch(() => undefined);
      listener.release();
    }
  });

  it('should write messages on their own, committed when write resolves, and relay them at once', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, pollIntervalMs: 600_000 });
    relays.push(outbox);
    // Not started: the row is committed and waits (nothing polls, no relay runs).
    await outbox.write([{ routingKey: 'deposit.received', payload: deposit(1), messageId: 'w-1' }]);
    assert.equal(Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count), 1);
    await outbox.start();
    await waitFor(async () => (await depth(vhost, 'sink')) === 1, { what: 'the row relayed at start' });
    // Running: its own write wakes it (no poll within the test's patience).
    await outbox.write({ routingKey: 'deposit.received', payload: deposit(2), messageId: 'w-2' });
    await waitFor(async () => (await depth(vhost, 'sink')) === 2, { what: 'the written row relayed' });
    await assert.rejects(outbox.write({ routingKey: 'deposit.received', payload: { depositId: 3 } }), (e: unknown) =>
      isFleetError(e, ErrorCode.VALIDATION_FAILED),
    );
    assert.deepEqual(
      (await takeAll(vhost, 'sink')).map((m) => m.properties.messageId),
      ['w-1', 'w-2'],
    );
  });

  it('should refuse an invalid event at enqueue, inserting nothing', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger });
    await assert.rejects(
      inTx((c) =>
        outbox.enqueue(c, [
          { routingKey: 'deposit.received', payload: deposit(1) },
          { routingKey: 'deposit.received', payload: { depositId: 1 } },
        ]),
      ),
      (e: unknown) => isFleetError(e, ErrorCode.VALIDATION_FAILED),
    );
    assert.equal(Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count), 0);
  });

  it('should keep rows when the broker is unreachable and publish them once it is back', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, pollIntervalMs: 20 });
    relays.push(outbox);
    await inTx((c) => outbox.enqueue(c, { routingKey: 'deposit.received', payload: deposit(7), messageId: 'm-7' }));
    await assert.rejects(outbox.flush(), (e: unknown) => isFleetError(e, ErrorCode.UNAVAILABLE));
    assert.equal(Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count), 1, 'row kept');
    await b.start();
    assert.equal(await outbox.flush(), 1);
    assert.equal(await depth(vhost, 'sink'), 1);
  });

  it('should publish, on its own poll, a row that a crashed process had claimed and never published', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, pollIntervalMs: 100 });
    relays.push(outbox);
    // Another replica of the service committed a row and died mid-pass holding it: the NOTIFY of
    // that commit is long gone, and nothing will notify again.
    await inTx((c) => outbox.enqueue(c, { routingKey: 'deposit.received', payload: deposit(11), messageId: 'left-behind' }));
    const crashed = new pg.Client({ connectionString: db.databaseUrl });
    await crashed.connect();
    crashed.on('error', () => undefined);
    await crashed.query(`BEGIN; DELETE FROM "${db.schema}".outbox WHERE message_id = 'left-behind'`);
    await outbox.start();
    assert.equal(await outbox.flush(), 0, 'held by the dying replica');
    assert.equal(await depth(vhost, 'sink'), 0);
    await pool.query('SELECT pg_terminate_backend($1)', [(crashed as unknown as { processID: number }).processID]);
    const [m] = await waitFor(
      async () => {
        const got = await takeAll(vhost, 'sink');
        return got.length ? got : undefined;
      },
      { what: 'the left-behind row published by the poll' },
    );
    assert.equal(m!.properties.messageId, 'left-behind');
    assert.equal(Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count), 0);
  });

  it('should resolve each of 40 concurrent watches once its message is confirmed and its row deleted', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, pollIntervalMs: 600_000 });
    relays.push(outbox);
    // Not started: no LISTEN, no poll. Only the callers' own settled() calls relay their rows.
    const ids = Array.from({ length: 40 }, () => randomUUID());
    const answers = await Promise.all(
      ids.map(async (id, i) => {
        const watch = outbox.watch([id]);
        await inTx((c) => outbox.enqueue(c, { routingKey: 'deposit.received', payload: deposit(i), messageId: id }));
        try {
          const mine = await watch.settled();
          // Resolved only after the confirm and the delete: the row is gone at this point.
          const left = await pool.query(`SELECT 1 FROM ${db.schema}.outbox WHERE message_id = $1`, [id]);
          return { mine, left: left.rowCount };
        } finally {
          watch.close();
        }
      }),
    );
    assert.deepEqual(new Set(answers.map((a) => a.mine)), new Set([true]));
    assert.deepEqual(new Set(answers.map((a) => a.left)), new Set([0]));
    const got = (await takeAll(vhost, 'sink')).map((m) => m.properties.messageId as string);
    assert.deepEqual([...got].sort(), [...ids].sort());
  });

  it('should settle a watch false for a row another relay holds, and true once that relay let go of it', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger });
    relays.push(outbox);
    const watch = outbox.watch(['held']);
    await inTx((c) => outbox.enqueue(c, { routingKey: 'deposit.received', payload: deposit(3), messageId: 'held' }));
    // Another replica's relay mid-publish: the row is locked, our pass skips it.
    const other = await pool.connect();
    try {
      await other.query('BEGIN');
      await other.query(`SELECT 1 FROM ${db.schema}.outbox WHERE message_id = 'held' FOR UPDATE`);
      assert.equal(await watch.settled(), false);
      await other.query('ROLLBACK'); // that relay failed to publish and let go
    } finally {
      other.release();
    }
    assert.equal(await watch.settled(), true);
    watch.close();
    assert.equal(await depth(vhost, 'sink'), 1);
  });

  it('should reject a watch while the broker is down, keeping the row, and settle it once the broker is back', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger });
    relays.push(outbox);
    const watch = outbox.watch(['m-down']);
    await inTx((c) => outbox.enqueue(c, { routingKey: 'deposit.received', payload: deposit(8), messageId: 'm-down' }));
    await assert.rejects(watch.settled(), (e: unknown) => isFleetError(e, ErrorCode.UNAVAILABLE));
    assert.equal(Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count), 1, 'row kept');
    await b.start();
    assert.equal(await watch.settled(), true);
    watch.close();
  });

  it('should insert messages as part of another statement only when that statement says so', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }));
    await b.start();
    const outbox = createOutbox({ pool, schema: db.schema, broker: b, logger, pollIntervalMs: 600_000 });
    relays.push(outbox);
    await pool.query(`CREATE TABLE ${db.schema}.things (id text PRIMARY KEY)`);
    const accept = async (id: string) => {
      const ins = outbox.insertSql({ routingKey: 'deposit.received', payload: deposit(9), messageId: `msg-${id}` }, 2);
      const { rows } = await pool.query(
        `WITH t AS (INSERT INTO ${db.schema}.things (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id),
              m AS (${ins.sql} WHERE EXISTS (SELECT 1 FROM t))
         SELECT id FROM t`,
        [id, ...ins.values],
      );
      return rows.length;
    };
    assert.equal(await accept('a'), 1);
    assert.equal(await accept('a'), 0, 'the second insert did nothing, and so enqueued nothing');
    assert.equal(Number((await pool.query(`SELECT count(*) FROM ${db.schema}.outbox`)).rows[0].count), 1);
    assert.throws(
      () => outbox.insertSql({ routingKey: 'deposit.received', payload: { depositId: 1 } }, 1),
      (e: unknown) => isFleetError(e, ErrorCode.VALIDATION_FAILED),
    );
    assert.equal(await outbox.flush(), 1);
    const [m] = await takeAll(vhost, 'sink');
    assert.equal(m!.properties.messageId, 'msg-a');
    assert.deepEqual(JSON.parse(m!.content.toString()), deposit(9));
  });
});
