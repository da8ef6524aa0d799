import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createLogger, migrate } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, type TestSchema } from '@wallet-fleet/testing';
import pg from 'pg';
import { type ProvisioningStore, createProvisioningStore } from '../src/store/provisioning-store.js';

const MIGRATIONS = fileURLToPath(new URL('../migrations', import.meta.url));

describe('provisioning store (PostgreSQL)', function () {
  this.timeout(30_000);
  let schema: TestSchema;
  let pool: pg.Pool;
  let store: ProvisioningStore;

  before(async () => {
    const { databaseUrl } = await backingServices();
    schema = await createSchemaName('prov_store');
    await migrate({ databaseUrl, schema: schema.schema, dir: MIGRATIONS, logger: createLogger({ service: 'test', level: 'silent' }) });
    pool = new pg.Pool({ connectionString: databaseUrl, max: 4, options: `-c search_path=${schema.schema}` });
    // These tests enqueue nothing; the outbox itself is tested in packages/messaging.
    store = createProvisioningStore(pool, {
      enqueue: async () => assert.fail('nothing is enqueued here'),
      insertSql: () => assert.fail('nothing is enqueued here'),
      wake: () => assert.fail('nothing is enqueued here'),
    });
  });

  after(async () => {
    await pool?.end();
    await schema?.drop();
  });

  it('should let only one of two concurrent sweeps claim a stuck row, and not claim it again within its new lease', async () => {
    await store.transaction(async (tx) => {
      await tx.upsertUser('stuck-user', ['SOL', 'ETH']);
      await tx.insertPending('stuck-user', ['SOL', 'ETH'], 0);
    });
    await pool.query(`UPDATE provisioning_chains SET lease_until = now() - interval '1 second'`);

    await store.transaction(async (a) => {
      const first = await a.claimStuck(60_000, 1);
      assert.equal(first.length, 1);
      // A second replica's sweep while the first one still holds its row: it takes the other row only.
      const second = await store.transaction((b) => b.claimStuck(60_000, 10));
      assert.equal(second.length, 1);
      assert.notEqual(second[0]!.chain, first[0]!.chain);
    });
    const third = await store.transaction((c) => c.claimStuck(60_000, 10));
    assert.deepEqual(third, []);
  });

  it('should insert each chain row once however often a user is approved, and reset only FAILED rows on a re-trigger', async () => {
    const inserted = await Promise.all(
      Array.from({ length: 6 }, () =>
        store.transaction(async (tx) => {
          await tx.upsertUser('dup-user', ['SOL', 'ETH', 'APTOS']);
          return tx.insertPending('dup-user', ['SOL', 'ETH', 'APTOS'], 60_000);
        }),
      ),
    );
    assert.deepEqual(inserted.flat().sort(), ['APTOS', 'ETH', 'SOL']);
    await store.transaction((tx) => tx.markFailedAttempt('dup-user', 'ETH', 'FAILED', { code: 'X', message: 'x' }, 0));
    const reset = await store.transaction((tx) => tx.resetFailed('dup-user', ['SOL', 'ETH', 'APTOS'], 60_000));
    assert.deepEqual(reset, ['ETH']);
    const eth = (await store.list('dup-user')).find((r) => r.chain === 'ETH')!;
    assert.deepEqual([eth.status, eth.attempts], ['PENDING', 0]);
  });
});
