import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'mocha';
import pg from 'pg';
import { FleetError } from '@wallet-fleet/contracts';
import { createLogger, createPgPool, migrate } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, type TestSchema } from '@wallet-fleet/testing';

const quiet = () => createLogger({ service: 'pg-test', level: 'silent', destination: new Writable({ write: (_c, _e, d) => d() }) });

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const { databaseUrl } = await backingServices();
  const c = new pg.Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe('createPgPool', () => {
  const schemas: TestSchema[] = [];
  let databaseUrl: string;
  before(async () => {
    databaseUrl = (await backingServices()).databaseUrl;
    schemas.push(await createSchemaName('kit_pg'), await createSchemaName('kit_pg'));
    await admin(async (c) => {
      for (const s of schemas) await c.query(`CREATE SCHEMA "${s.schema}"`);
    });
  });
  after(async () => {
    for (const s of schemas) await s.drop();
  });

  it('should give every connection search_path = the schema, so unqualified tables are the service’s own', async () => {
    const [a, b] = schemas.map((s) => createPgPool({ url: databaseUrl, schema: s.schema, max: 4, applicationName: 'kit-test' }));
    try {
      await a!.component.start();
      await b!.component.start();
      // Several connections at once: each one must carry the setting, not only the first.
      const paths = await Promise.all(Array.from({ length: 4 }, () => a!.pool.query<{ search_path: string }>('SHOW search_path')));
      for (const p of paths) assert.equal(p.rows[0]!.search_path, schemas[0]!.schema);
      assert.equal(a!.pool.totalCount, 4);
      for (const [pool, name] of [
        [a!, 'alpha'],
        [b!, 'beta'],
      ] as const) {
        await pool.pool.query('CREATE TABLE wallets (name text)');
        await pool.pool.query('INSERT INTO wallets VALUES ($1)', [name]);
      }
      assert.deepEqual((await a!.pool.query('SELECT name FROM wallets')).rows, [{ name: 'alpha' }]);
      assert.deepEqual((await b!.pool.query('SELECT name FROM wallets')).rows, [{ name: 'beta' }]);
      const app = await a!.pool.query<{ app: string }>("SELECT current_setting('application_name') AS app");
      assert.equal(app.rows[0]!.app, 'kit-test');
      assert.deepEqual(await a!.check.check(), { total: 4, idle: 4, waiting: 0 });
    } finally {
      await a!.component.stop();
      await b!.component.stop();
    }
  });

  it('should reject a schema that is not a lower-case identifier before connecting', () => {
    assert.throws(() => createPgPool({ url: databaseUrl, schema: 'x; DROP TABLE y' }), TypeError);
    assert.throws(() => createPgPool({ url: databaseUrl, schema: 'Wallet' }), TypeError);
  });

  it('should fail start with UNAVAILABLE and no password in the message when the database is unreachable', async () => {
    const db = createPgPool({ url: 'postgres://app:pg-pw-123@127.0.0.1:1/x', schema: 'wallet' });
    try {
      await assert.rejects(db.component.start(), (e: unknown) => {
        assert.ok(e instanceof FleetError);
        assert.equal(e.code, 'UNAVAILABLE');
        assert.equal(e.retryable, true);
        assert.match(e.message, /postgres at postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/x unreachable/);
        assert.doesNotMatch(e.message, /pg-pw-123/);
        return true;
      });
      await assert.rejects(db.check.check());
    } finally {
      await db.component.stop();
    }
  });
});

describe('migrate', () => {
  let dir: string;
  let databaseUrl: string;
  const schemas: TestSchema[] = [];
  const fresh = async () => {
    const s = await createSchemaName('kit_mig');
    schemas.push(s);
    return s.schema;
  };

  before(async () => {
    databaseUrl = (await backingServices()).databaseUrl;
    dir = await mkdtemp(join(tmpdir(), 'kit-migrations-'));
    await writeFile(
      join(dir, '1700000000000_init.sql'),
      `-- Up Migration
CREATE TABLE runs (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
INSERT INTO runs DEFAULT VALUES;
-- pg_sleep widens the window in which an unlocked concurrent runner would also see this as pending
SELECT pg_sleep(0.05);
-- Down Migration
DROP TABLE runs;
`,
    );
    await writeFile(join(dir, '1700000000001_wallets.sql'), `-- Up Migration\nCREATE TABLE wallets (id text PRIMARY KEY);\nINSERT INTO runs DEFAULT VALUES;\n`);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    for (const s of schemas) await s.drop();
  });

  const tablesIn = (schema: string) =>
    admin(async (c) =>
      (await c.query<{ t: string }>('SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1', [schema])).rows.map((r) => r.t),
    );

  it('should create the schema, run every migration in it with the migrations table there, and then have nothing left', async () => {
    const schema = await fresh();
    const ran = await migrate({ databaseUrl, schema, dir, logger: quiet() });
    assert.deepEqual(ran, ['1700000000000_init', '1700000000001_wallets']);
    assert.deepEqual(await tablesIn(schema), ['pgmigrations', 'runs', 'wallets']);
    assert.deepEqual(await migrate({ databaseUrl, schema, dir, logger: quiet() }), []);
    const runs = await admin((c) => c.query(`SELECT count(*)::int AS n FROM "${schema}".runs`));
    assert.equal(runs.rows[0].n, 2);
  });

  it('should let 4 replicas migrate a fresh schema at once: all succeed and each migration runs once', async () => {
    const schema = await fresh();
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate({ databaseUrl, schema, dir, logger: quiet() })));
    assert.equal(results.filter((r) => r.length === 2).length, 1, JSON.stringify(results));
    assert.equal(results.filter((r) => r.length === 0).length, 3, JSON.stringify(results));
    const counts = await admin(async (c) => ({
      runs: (await c.query(`SELECT count(*)::int AS n FROM "${schema}".runs`)).rows[0].n,
      migrations: (await c.query(`SELECT count(*)::int AS n FROM "${schema}".pgmigrations`)).rows[0].n,
    }));
    assert.deepEqual(counts, { runs: 2, migrations: 2 });
  });

  it('should roll back the whole run and throw INTERNAL when a migration fails', async () => {
    const schema = await fresh();
    const badDir = await mkdtemp(join(tmpdir(), 'kit-migrations-bad-'));
    try {
      await writeFile(join(badDir, '1700000000000_ok.sql'), '-- Up Migration\nCREATE TABLE fine (id int);\n');
      await writeFile(join(badDir, '1700000000001_broken.sql'), '-- Up Migration\nCREATE TABLE broken (id nosuchtype);\n');
      await assert.rejects(migrate({ databaseUrl, schema, dir: badDir, logger: quiet() }), (e: unknown) => {
        assert.ok(e instanceof FleetError);
        assert.equal(e.code, 'INTERNAL');
        assert.equal(e.retryable, false);
        assert.match(e.message, /nosuchtype/);
        return true;
      });
      assert.ok(!(await tablesIn(schema)).includes('fine'));
    } finally {
      await rm(badDir, { recursive: true, force: true });
    }
  });

  it('should throw UNAVAILABLE without the password when the database is unreachable', async () => {
    await assert.rejects(migrate({ databaseUrl: 'postgres://app:mig-pw-456@127.0.0.1:1/x', schema: 'wallet', dir, logger: quiet() }), (e: unknown) => {
      assert.ok(e instanceof FleetError);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.doesNotMatch(e.message, /mig-pw-456/);
      return true;
    });
  });
});
