import assert from 'node:assert/strict';
import { backingServices, createSchemaName, type TestSchema, waitFor } from '@wallet-fleet/testing';
import pg from 'pg';
import { afterCommit, inTransaction } from '../src/index.js';

describe('inTransaction', () => {
  let pool: pg.Pool;
  let schema: TestSchema;

  before(async () => {
    const { databaseUrl } = await backingServices();
    schema = await createSchemaName('kit_tx');
    pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    await pool.query(`CREATE SCHEMA ${schema.schema}; CREATE TABLE ${schema.schema}.t (id int PRIMARY KEY)`);
  });
  after(async () => {
    await pool?.end();
    await schema?.drop();
  });

  const count = async () => Number((await pool.query(`SELECT count(*) AS n FROM ${schema.schema}.t`)).rows[0].n);

  it('should commit what the function wrote and return its result', async () => {
    const r = await inTransaction(pool, async (c) => {
      await c.query(`INSERT INTO ${schema.schema}.t VALUES (1), (2)`);
      return 'done';
    });
    assert.equal(r, 'done');
    assert.equal(await count(), 2);
  });

  it('should roll back everything and rethrow the driver error unchanged (its SQLSTATE kept)', async () => {
    await assert.rejects(
      inTransaction(pool, async (c) => {
        await c.query(`INSERT INTO ${schema.schema}.t VALUES (3)`);
        await c.query(`INSERT INTO ${schema.schema}.t VALUES (1)`);
      }),
      (e: unknown) => (e as { code?: string }).code === '23505',
    );
    assert.equal(await count(), 2);
    // The pool still serves (the failed client was dropped, not handed out broken).
    assert.equal(await inTransaction(pool, async (c) => (await c.query('SELECT 1 AS one')).rows[0].one), 1);
  });

  it('should run after-commit hooks once the rows are visible to others, and never after a rollback', async () => {
    const seen: number[] = [];
    await inTransaction(pool, async (c) => {
      await c.query(`INSERT INTO ${schema.schema}.t VALUES (10)`);
      assert.equal(
        afterCommit(c, () => void count().then((n) => seen.push(n))),
        true,
      );
      assert.deepEqual(seen, [], 'not before COMMIT');
    });
    // The hook's own read on another connection already sees the committed row.
    await waitFor(() => seen.length === 1, { what: 'the after-commit hook' });
    assert.deepEqual(seen, [3]);
    let ranAfterRollback = false;
    await assert.rejects(
      inTransaction(pool, async (c) => {
        afterCommit(c, () => (ranAfterRollback = true));
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.equal(ranAfterRollback, false);
  });

  it('should refuse a hook on a client that is not inside inTransaction', async () => {
    const c = await pool.connect();
    try {
      assert.equal(
        afterCommit(c, () => undefined),
        false,
      );
    } finally {
      c.release();
    }
  });
});
