import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createLogger, migrate } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, type TestSchema } from '@wallet-fleet/testing';
import pg from 'pg';
import { inTransaction, provisioningStore } from '../src/store/provisioning-store.js';

const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

describe('provisioning store (PostgreSQL)', function () {
  this.timeout(30_000);
  let schema: TestSchema;
  let pool: pg.Pool;

  before(async () => {
    const { databaseUrl } = await backingServices();
    schema = await createSchemaName('prov_store');
    await migrate({ databaseUrl, schema: schema.schema, dir: MIGRATIONS, logger: createLogger({ service: 'test', level: 'silent' }) });
    pool = new pg.Pool({ connectionString: databaseUrl, max: 4, options: `-c search_path=${schema.schema}` });
  });

  after(async () => {
    await pool?.end();
    await schema?.drop();
  });

  it('should let only one of two concurrent sweeps claim a stuck row, and not claim it again within its new lease', async () => {
    await inTransaction(pool, async (c) => {
      await provisioningStore.upsertUser(c, 'stuck-user', ['SOL', 'ETH']);
      await provisioningStore.insertPending(c, 'stuck-user', ['SOL', 'ETH'], 0);
    });
    await pool.query(`UPDATE provisioning_chains SET lease_until = now() - interval '1 second'`);

    const a = await pool.connect();
    try {
      await a.query('BEGIN');
      const first = await provisioningStore.claimStuck(a, 60_000, 1);
      assert.equal(first.length, 1);
      // A second replica's sweep while the first one still holds its row: it takes the other row only.
      const second = await inTransaction(pool, (b) => provisioningStore.claimStuck(b, 60_000, 10));
      assert.equal(second.length, 1);
      assert.notEqual(second[0]!.chain, first[0]!.chain);
      await a.query('COMMIT');
    } finally {
      a.release();
    }
    const third = await inTransaction(pool, (c) => provisioningStore.claimStuck(c, 60_000, 10));
    assert.deepEqual(third, []);
  });

  it('should insert each chain row once however often a user is approved, and reset only FAILED rows on a re-trigger', async () => {
    const inserted = await Promise.all(
      Array.from({ length: 6 }, () =>
        inTransaction(pool, async (c) => {
          await provisioningStore.upsertUser(c, 'dup-user', ['SOL', 'ETH', 'APTOS']);
          return provisioningStore.insertPending(c, 'dup-user', ['SOL', 'ETH', 'APTOS'], 60_000);
        }),
      ),
    );
    assert.deepEqual(inserted.flat().sort(), ['APTOS', 'ETH', 'SOL']);
    await inTransaction(pool, (c) => provisioningStore.markFailedAttempt(c, 'dup-user', 'ETH', 'FAILED', { code: 'X', message: 'x' }, 0));
    const reset = await inTransaction(pool, (c) => provisioningStore.resetFailed(c, 'dup-user', ['SOL', 'ETH', 'APTOS'], 60_000));
    assert.deepEqual(reset, ['ETH']);
    const eth = (await provisioningStore.list(pool, 'dup-user')).find((r) => r.chain === 'ETH')!;
    assert.deepEqual([eth.status, eth.attempts], ['PENDING', 0]);
  });
});
