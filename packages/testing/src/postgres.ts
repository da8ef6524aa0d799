import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { backingServices } from './backing.js';

/**
 * The group role every service's migrations grant `EXECUTE` on its `outbox_stale` function to; the
 * reconciliation runtime role is made a member (scripts/setup.sh does the same for the fleet).
 */
const OUTBOX_READER_ROLE = 'wallet_fleet_outbox_reader';

export interface TestSchema {
  schema: string;
  /** The superuser URL: for a test's own look at (or tampering with) the tables. */
  databaseUrl: string;
  /** Logs in as `<schema>_runtime`: only what the service's migrations grant it. */
  runtimeUrl: string;
  /** Logs in as `<schema>_owner`, the migration role that owns the schema. */
  migrationUrl: string;
  /** `DATABASE_URL` (runtime), `DATABASE_MIGRATION_URL` and `DATABASE_SCHEMA`, for a service's config. */
  env: { DATABASE_URL: string; DATABASE_MIGRATION_URL: string; DATABASE_SCHEMA: string };
  /** Drops the schema and both roles. */
  drop(): Promise<void>;
}

async function asAdmin<T>(databaseUrl: string, work: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * `work` in one transaction holding a cluster-wide advisory lock: concurrent suites granting on (or
 * revoking from) the same database otherwise fail with "tuple concurrently updated" (its ACL is one
 * row of pg_database).
 */
async function serialised(c: pg.Client, work: () => Promise<void>): Promise<void> {
  await c.query('BEGIN');
  try {
    await c.query("SELECT pg_advisory_xact_lock(hashtext('wallet-fleet:test-roles'))");
    await work();
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK');
    throw e;
  }
}

function urlAs(databaseUrl: string, user: string, password: string): string {
  const u = new URL(databaseUrl);
  u.username = user;
  u.password = password;
  return u.toString();
}

/**
 * A fresh PostgreSQL schema name for one test or suite (created by the code under test, dropped
 * here), with the two roles production has (docs/operations.md, "Database roles"): `<schema>_owner`
 * runs the migrations and owns what they create, `<schema>_runtime` gets only their grants. So a
 * service under test runs with exactly the privileges it has in production, and a test's roles
 * reach no other test's schema. `outboxReader` makes the runtime role a member of
 * `OUTBOX_READER_ROLE`, as reconciliation's is.
 */
export async function createSchemaName(prefix = 't', opts: { outboxReader?: boolean } = {}): Promise<TestSchema> {
  const { databaseUrl } = await backingServices();
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  const owner = `${schema}_owner`;
  const runtime = `${schema}_runtime`;
  const password = randomBytes(12).toString('hex');
  await asAdmin(databaseUrl, (c) =>
    serialised(c, async () => {
      const db = (await c.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
      await c.query(`DO $$ BEGIN CREATE ROLE ${OUTBOX_READER_ROLE} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
      await c.query(`CREATE ROLE "${owner}" LOGIN PASSWORD '${password}'`);
      await c.query(`CREATE ROLE "${runtime}" LOGIN PASSWORD '${password}'`);
      // CREATE SCHEMA IF NOT EXISTS checks this privilege even when the schema exists.
      await c.query(`GRANT CREATE ON DATABASE "${db}" TO "${owner}"`);
      if (opts.outboxReader) await c.query(`GRANT ${OUTBOX_READER_ROLE} TO "${runtime}"`);
    }),
  );
  const runtimeUrl = urlAs(databaseUrl, runtime, password);
  const migrationUrl = urlAs(databaseUrl, owner, password);
  return {
    schema,
    databaseUrl,
    runtimeUrl,
    migrationUrl,
    env: { DATABASE_URL: runtimeUrl, DATABASE_MIGRATION_URL: migrationUrl, DATABASE_SCHEMA: schema },
    drop: () =>
      asAdmin(databaseUrl, (c) =>
        serialised(c, async () => {
          await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
          // DROP OWNED also revokes what the roles were granted (database, group role).
          for (const role of [runtime, owner]) {
            await c.query(`DROP OWNED BY "${role}"`);
            await c.query(`DROP ROLE IF EXISTS "${role}"`);
          }
        }),
      ),
  };
}
