import { createHash } from 'node:crypto';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { runner } from 'node-pg-migrate';
import pg from 'pg';
import { scrubCredentials, type Logger } from './logger.js';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The session setting through which migrations learn the runtime role they grant privileges to
 * (node-pg-migrate has no templating): `current_setting('wallet_fleet.runtime_role')` in SQL.
 */
const RUNTIME_ROLE_SETTING = 'wallet_fleet.runtime_role';

/** The table, inside the service's schema, recording which migrations ran. */
const MIGRATIONS_TABLE = 'pgmigrations';

/**
 * The advisory lock key of one schema's migrations: replicas of one service exclude each other,
 * while services migrating their own schemas in the same database do not wait on each other (as
 * they would on node-pg-migrate's single default key). 48 bits keep it a safe JS integer.
 */
function migrationLockKey(schema: string): number {
  return createHash('sha256').update(`wallet-fleet:migrate:${schema}`).digest().readUIntBE(0, 6);
}

// Connection-level failures are worth a retry (the process restarts); anything else is a broken
// migration that a retry would only repeat.
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EAI_AGAIN', '57P03', '53300']);

/**
 * Migrates `schema` up to the latest migration in `dir` (`.sql` files, or `.js` modules exporting
 * `up`), with node-pg-migrate's runner: the schema is created if missing, the migrations table
 * lives in it, and all pending migrations run in one transaction.
 *
 * Runs under a PostgreSQL advisory lock (`migrationLockKey(schema)`) in wait mode: replicas that
 * start at once queue up, and each one after the first finds nothing left to run. The lock is
 * taken before `CREATE SCHEMA IF NOT EXISTS`, which itself races (a unique violation) when two
 * sessions create the same schema concurrently.
 *
 * `databaseUrl` is the migration role, which owns the schema. The migrations grant the runtime role
 * what the service needs, reading its name from the session setting `wallet_fleet.runtime_role`:
 * the user that `runtimeUrl` logs in as (asked of the server, so a URL without a user name works
 * too). Without `runtimeUrl` the migration role is also the runtime role (grants to itself change
 * nothing).
 *
 * Returns the names of the migrations this call ran (empty when up to date).
 *
 * @throws TypeError when `schema` or the runtime role is not a lower-case identifier.
 * @throws FleetError `UNAVAILABLE` (retryable) when the database cannot be reached, `INTERNAL`
 *   when a migration fails (the transaction is rolled back; nothing of this run stays applied).
 */
export async function migrate(opts: { databaseUrl: string; runtimeUrl?: string | undefined; schema: string; dir: string; logger: Logger }): Promise<string[]> {
  if (!IDENTIFIER.test(opts.schema)) {
    throw new TypeError(`schema must be a lower-case identifier (a-z, 0-9, _), got ${JSON.stringify(opts.schema)}`);
  }
  const log = opts.logger.child({ component: 'migrate', schema: opts.schema });
  const say = (level: 'debug' | 'info' | 'warn' | 'error') => (msg: string) => log[level](scrubCredentials(String(msg)));
  try {
    const runtimeRole = await sessionUser(opts.runtimeUrl ?? opts.databaseUrl);
    // The identifier check keeps the value free of spaces and quotes, which `options` would need escaped.
    if (!IDENTIFIER.test(runtimeRole)) {
      throw new TypeError(`the runtime role must be a lower-case identifier (a-z, 0-9, _), got ${JSON.stringify(runtimeRole)}`);
    }
    const ran = await runner({
      databaseUrl: { connectionString: opts.databaseUrl, options: `-c ${RUNTIME_ROLE_SETTING}=${runtimeRole}` },
      dir: opts.dir,
      schema: opts.schema,
      createSchema: true,
      migrationsSchema: opts.schema,
      migrationsTable: MIGRATIONS_TABLE,
      direction: 'up',
      count: Number.POSITIVE_INFINITY,
      singleTransaction: true,
      checkOrder: true,
      lockValue: migrationLockKey(opts.schema),
      advisoryLockMode: 'wait',
      logger: { debug: say('debug'), info: say('info'), warn: say('warn'), error: say('error') },
    });
    const names = ran.map((m) => m.name);
    log.info({ ran: names, runtimeRole }, names.length > 0 ? 'migrations applied' : 'schema up to date');
    return names;
  } catch (err) {
    if (err instanceof TypeError) throw err;
    const code = (err as { code?: string; cause?: { code?: string } })?.code ?? (err as { cause?: { code?: string } })?.cause?.code;
    const message = scrubCredentials(err instanceof Error ? err.message : String(err));
    if (code && UNAVAILABLE_CODES.has(code)) {
      throw new FleetError(ErrorCode.UNAVAILABLE, `migrate ${opts.schema}: database unreachable: ${message}`, { cause: err });
    }
    throw new FleetError(ErrorCode.INTERNAL, `migrate ${opts.schema}: ${message}`, { retryable: false, cause: err });
  }
}

/** The role a URL logs in as. */
async function sessionUser(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rows } = await client.query<{ role: string }>('SELECT session_user AS role');
    return rows[0]!.role;
  } finally {
    await client.end();
  }
}

/**
 * A service component that migrates `schema` at start (`enabled`, i.e. `MIGRATE`, true) as the
 * migration role (`databaseUrl`), granting the runtime role of `runtimeUrl`, or only says it expects
 * the schema migrated by a separate step. Nothing to stop.
 */
export function migrationsComponent(opts: { enabled: boolean; databaseUrl: string; runtimeUrl?: string; schema: string; dir: string; logger: Logger }) {
  return {
    name: 'migrations',
    start: async () => {
      if (opts.enabled) await migrate(opts);
      else opts.logger.info({ schema: opts.schema }, 'MIGRATE=false: expecting the schema to be migrated already');
    },
    stop: async () => undefined,
  };
}
