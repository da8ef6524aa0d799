import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import pg from 'pg';
import type { Check } from './http.js';
import type { Component } from './lifecycle.js';
import { safeUrl, scrubCredentials, type Logger } from './logger.js';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** A pool bound to one schema, with its readiness check and lifecycle component. */
export interface PgPool {
  pool: pg.Pool;
  /** `SELECT 1` through the pool; details: pool counts. */
  check: Check;
  /** start: one round trip (fails fast on a wrong URL); stop: `pool.end()` (waits for checked-out clients). */
  component: Component;
}

/**
 * A `pg` pool whose every connection has `search_path` = `schema`: set by the `options` startup
 * parameter, so it holds from the first query on every connection (no per-connect `SET` that a
 * query could overtake) and unqualified table names always mean this service's tables. Only that
 * schema is on the path (no `public`): a missing table fails instead of resolving elsewhere.
 *
 * Connections time out after 5 s (`connectionTimeoutMillis`), so a query against a database that
 * is down fails instead of waiting for a connection forever.
 *
 * @throws TypeError when `schema` is not a lower-case identifier (checked before any connection).
 * `component.start()` rejects with `FleetError` `UNAVAILABLE` when the database cannot be reached.
 */
export function createPgPool(opts: { url: string; schema: string; max?: number; applicationName?: string; logger?: Logger }): PgPool {
  if (!IDENTIFIER.test(opts.schema)) {
    throw new TypeError(`schema must be a lower-case identifier (a-z, 0-9, _), got ${JSON.stringify(opts.schema)}`);
  }
  const log = opts.logger?.child({ component: 'postgres' });
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max ?? 10,
    // The identifier regex above keeps the value free of spaces and quotes, which `options` would
    // otherwise need escaped (libpq splits it on whitespace).
    options: `-c search_path=${opts.schema}`,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    ...(opts.applicationName ? { application_name: opts.applicationName } : {}),
  });
  // An idle client whose connection dies (database restart) emits here; without a listener the
  // process would crash. The pool drops that client and opens a new one on the next checkout.
  pool.on('error', (err) => log?.warn({ err }, 'idle postgres connection failed'));

  let ended: Promise<void> | undefined;
  return {
    pool,
    check: {
      name: 'postgres',
      check: async () => {
        await pool.query('SELECT 1');
        return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
      },
    },
    component: {
      name: 'postgres',
      async start() {
        try {
          await pool.query('SELECT 1');
        } catch (err) {
          throw new FleetError(
            ErrorCode.UNAVAILABLE,
            `postgres at ${safeUrl(opts.url)} unreachable: ${scrubCredentials(err instanceof Error ? err.message : String(err))}`,
            { cause: err },
          );
        }
        log?.info({ url: safeUrl(opts.url), schema: opts.schema }, 'postgres reachable');
      },
      stop() {
        ended ??= pool.end();
        return ended;
      },
    },
  };
}
