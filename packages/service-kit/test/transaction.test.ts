import assert from 'node:assert/strict';
import { backingServices, createSchemaName, type TestSchema } from '@wallet-fleet/testing';
import pg from 'pg';
import { inTransaction } from '../src/index.js';

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
});
