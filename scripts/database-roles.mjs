#!/usr/bin/env node
// Creates the fleet's PostgreSQL roles on a local server, two per service (docs/operations.md,
// "Database roles"): `<service>_migration` owns the service's schema and runs its migrations
// (DATABASE_MIGRATION_URL), `<service>_runtime` gets only what those migrations grant (DATABASE_URL);
// reconciliation's runtime role is a member of wallet_fleet_outbox_reader (stale outbox counts of
// the other services). Each role's password is DATABASE_PASSWORD_<ROLE> (e.g.
// DATABASE_PASSWORD_AUDIT_RUNTIME), else the role's name (a local development convention, like the
// broker users; production passwords come from secrets). A schema left by an earlier run under
// another owner (the superuser, before roles existed) is handed to the migration role.
// Used by scripts/setup.sh; idempotent. Connects as the user of DATABASE_URL (a superuser locally).
import { readdirSync } from 'node:fs';
import pg from 'pg';

const url = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const services = readdirSync(new URL('../services', import.meta.url), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);
const password = (role) => process.env[`DATABASE_PASSWORD_${role.toUpperCase()}`] || role;
const ident = (name) => `"${name.replace(/"/g, '""')}"`;
const literal = (value) => `'${value.replace(/'/g, "''")}'`;

const client = new pg.Client({ connectionString: url });
await client.connect();
try {
  const { rows } = await client.query('SELECT current_database() AS db');
  const db = rows[0].db;
  const ensureRole = async (role, login) => {
    const exists = (await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).rowCount > 0;
    const attributes = login ? `LOGIN PASSWORD ${literal(password(role))}` : 'NOLOGIN';
    await client.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${ident(role)} ${attributes}`);
  };
  await ensureRole('wallet_fleet_outbox_reader', false);
  for (const service of services) {
    const migration = `${service}_migration`;
    const runtime = `${service}_runtime`;
    await ensureRole(migration, true);
    await ensureRole(runtime, true);
    // CREATE SCHEMA IF NOT EXISTS (run by every migration) checks this even when the schema exists.
    await client.query(`GRANT CREATE ON DATABASE ${ident(db)} TO ${ident(migration)}`);
    const schema = process.env[`${service.toUpperCase()}_DATABASE_SCHEMA`] || service;
    await client.query(
      `DO $$
       DECLARE r record;
       BEGIN
         IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${literal(schema)}) THEN
           EXECUTE format('ALTER SCHEMA %I OWNER TO %I', ${literal(schema)}, ${literal(migration)});
           FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = ${literal(schema)} AND c.relkind IN ('r', 'v', 'm', 'f', 'p') LOOP
             EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', ${literal(schema)}, r.relname, ${literal(migration)});
           END LOOP;
           FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = ${literal(schema)} LOOP
             EXECUTE format('ALTER ROUTINE %s OWNER TO %I', r.fn, ${literal(migration)});
           END LOOP;
         END IF;
       END $$`,
    );
  }
  if (services.includes('reconciliation')) await client.query('GRANT wallet_fleet_outbox_reader TO reconciliation_runtime');
  console.log(`database roles ${services.map((s) => `${s}_migration/${s}_runtime`).join(', ')} ready in ${db}`);
} finally {
  await client.end();
}
