import assert from 'node:assert/strict';
import { Exchanges } from '@wallet-fleet/contracts';
import { createSchemaName, waitFor, type TestSchema, type TestVhost } from '@wallet-fleet/testing';
import pg from 'pg';
import { createIdempotencyStore, defineTopology, idempotencyTableSql } from '@wallet-fleet/messaging';
import { broker, cleanup, freshVhost } from './support.js';

describe('messaging: idempotent consumers', () => {
  let db: TestSchema;
  let pool: pg.Pool;
  beforeEach(async () => {
    db = await createSchemaName('idem');
    pool = new pg.Pool({ connectionString: db.databaseUrl, max: 6 });
    await pool.query(idempotencyTableSql(db.schema));
    await pool.query(idempotencyTableSql(db.schema));
  });
  afterEach(async () => {
    await cleanup();
    await pool.end();
    await db.drop();
  });

  it('should claim a key once per consumer, and release it when the transaction rolls back', async () => {
    const store = createIdempotencyStore({ pool, schema: db.schema });
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      assert.equal(await store.claim(c, 'prov', 'k1'), true);
      await c.query('ROLLBACK');
      await c.query('BEGIN');
      assert.equal(await store.claim(c, 'prov', 'k1'), true, 'a rolled-back claim never happened');
      await c.query('COMMIT');
      assert.equal(await store.claim(c, 'prov', 'k1'), false);
      assert.equal(await store.claim(c, 'other-consumer', 'k1'), true, 'claims are per consumer');
    } finally {
      c.release();
    }
  });

  it('should let only one of two concurrent transactions claim a key', async () => {
    const store = createIdempotencyStore({ pool, schema: db.schema });
    const [a, b] = [await pool.connect(), await pool.connect()];
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      assert.equal(await store.claim(a, 'prov', 'k2'), true);
      const second = store.claim(b, 'prov', 'k2'); // waits on a's uncommitted row
      await a.query('COMMIT');
      assert.equal(await second, false);
      await b.query('COMMIT');
    } finally {
      a.release();
      b.release();
    }
  });

  it('should apply a duplicated message only once when the handler claims its message id', async () => {
    const vhost: TestVhost = await freshVhost();
    try {
      await pool.query(`CREATE TABLE ${db.schema}.effects (user_id text)`);
      const store = createIdempotencyStore({ pool, schema: db.schema });
      const b = broker(vhost, defineTopology({ queues: [{ name: 'prov.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] }] }));
      let calls = 0;
      b.handleEvents('prov.events', {
        'kyc.approved': async (input, ctx) => {
          calls++;
          const c = await pool.connect();
          try {
            await c.query('BEGIN');
            if (await store.claim(c, 'prov.events', ctx.messageId!)) {
              await c.query(`INSERT INTO ${db.schema}.effects VALUES ($1)`, [input.userId]);
            }
            await c.query('COMMIT');
          } finally {
            c.release();
          }
        },
      });
      await b.start();
      await b.publishEvent('kyc.approved', { userId: 'u-dup' }, { messageId: 'same-id' });
      await b.publishEvent('kyc.approved', { userId: 'u-dup' }, { messageId: 'same-id' });
      await waitFor(() => calls === 2, { what: 'both deliveries' });
      await b.stop(); // lets both handlers finish
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM ${db.schema}.effects`);
      assert.equal(rows[0].n, 1);
      assert.equal(await createIdempotencyStore({ pool, schema: db.schema }).prune(new Date(Date.now() + 60_000)), 1);
    } finally {
      await cleanup();
      await vhost.drop();
    }
  });
});
