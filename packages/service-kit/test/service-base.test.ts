import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'mocha';
import { type Component, createLogger, createServiceBase, getOrCreateMetric, loadConfig, serviceConfigShape } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, type TestSchema } from '@wallet-fleet/testing';
import { Counter, Registry } from 'prom-client';

const quiet = () => createLogger({ service: 'base-test', level: 'silent', destination: new Writable({ write: (_c, _e, d) => d() }) });

describe('createServiceBase', () => {
  let dir: string;
  let schema: TestSchema;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'base-migrations-'));
    // As every service's migrations do: the runtime role (named by the migration runner) gets grants.
    await writeFile(
      join(dir, '001_things.sql'),
      `CREATE TABLE things (id int PRIMARY KEY);
       DO $$ BEGIN
         EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), current_setting('wallet_fleet.runtime_role'));
         EXECUTE format('GRANT SELECT, INSERT ON things TO %I', current_setting('wallet_fleet.runtime_role'));
       END $$;`,
    );
    schema = await createSchemaName('kit_base');
  });
  after(async () => {
    await schema.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('should migrate, serve the pool check before the service’s own, and stop the service’s parts before the pool', async () => {
    const { redisUrl } = await backingServices();
    const config = loadConfig(serviceConfigShape({ httpPort: 0, schema: 'unused', poolMax: 2 }), {
      ...schema.env,
      REDIS_URL: redisUrl,
      SHUTDOWN_TIMEOUT_MS: '1000',
    });
    const base = createServiceBase({ name: 'base-test', config, logger: quiet(), migrations: pathToFileURL(`${dir}/`) });
    const events: string[] = [];
    const own: Component = {
      name: 'consumers',
      start: async () => {
        // The pool is up and the schema migrated by the time the service's own parts start.
        await base.pg.pool.query('INSERT INTO things VALUES (1)');
        events.push('start consumers');
      },
      stop: async () => {
        await base.pg.pool.query('SELECT count(*) FROM things');
        events.push('stop consumers');
      },
    };
    const redis = base.redis();
    assert.equal(base.redis(), redis, 'one Redis handle per service');
    const service = base.assemble({ components: [redis.component, own], checks: [redis.check, { name: 'own', check: async () => undefined }] });
    await service.start();
    try {
      const ready = await fetch(`http://127.0.0.1:${service.port()}/ready`);
      assert.equal(ready.status, 200);
      assert.deepEqual(Object.keys(((await ready.json()) as { checks: object }).checks), ['postgres', 'redis', 'own']);
      assert.equal(redis.client.options.keyPrefix, `base-test:${schema.schema}:`);
    } finally {
      await service.stop();
    }
    assert.deepEqual(events, ['start consumers', 'stop consumers']);
    assert.equal(base.pg.pool.ended, true, 'the pool closes once the service stopped');
  });
});

describe('getOrCreateMetric', () => {
  it('should make a metric once per registry and name, so code run twice shares its series', async () => {
    const registry = new Registry();
    const make = () => new Counter({ name: 'kit_things_total', help: 'things', registers: [registry] });
    const a = getOrCreateMetric(registry, 'kit_things_total', make);
    const b = getOrCreateMetric(registry, 'kit_things_total', make);
    assert.equal(b, a);
    assert.equal((await registry.getMetricsAsJSON()).length, 1);
  });
});
