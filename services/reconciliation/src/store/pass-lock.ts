import { type Logger, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';

/** A held pass lock. `signal` aborts when the lock is lost (connection gone): stop the pass. */
export interface HeldLock {
  signal: AbortSignal;
  release(): Promise<void>;
}

export interface PassLock {
  /** The lock, or undefined when another holder has it. Throws FleetError UNAVAILABLE or INTERNAL on a database error. */
  tryAcquire(): Promise<HeldLock | undefined>;
}

/**
 * Fleet-wide mutual exclusion for passes: a PostgreSQL transaction-scoped advisory lock
 * (`pg_try_advisory_xact_lock`) held by a transaction that stays open for the pass.
 * - a holder that crashes loses it when its connection closes (the server ends the transaction);
 * - a holder that freezes (or is cut off without a FIN) loses it after `timeoutMs`:
 *   `idle_in_transaction_session_timeout` ends the session, and a live holder touches it every
 *   `timeoutMs / 4` to keep it;
 * - no row to clean up, no expiry to guess against clock skew (the server decides alone).
 * `key` names the lock; replicas with the same key exclude each other.
 */
export function createPassLock(pool: pg.Pool, key: string, timeoutMs: number, logger: Logger): PassLock {
  return {
    tryAcquire: () => withDatabaseErrors(() => acquire()),
  };

  async function acquire(): Promise<HeldLock | undefined> {
    const client = await pool.connect();
    let ok = false;
    try {
      await client.query('BEGIN');
      await client.query(`SELECT set_config('idle_in_transaction_session_timeout', $1, true)`, [`${timeoutMs}ms`]);
      const { rows } = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS ok`, [key]);
      if (!rows[0]?.ok) {
        await client.query('ROLLBACK');
        ok = true;
        client.release();
        return undefined;
      }
      ok = true;
    } finally {
      if (!ok) client.release(true);
    }

    const lost = new AbortController();
    let released = false;
    const onError = (err: Error) => {
      if (!released) logger.warn({ err }, 'reconciliation lock lost: stopping the pass');
      lost.abort(new Error('reconciliation lock lost'));
    };
    client.on('error', onError);
    const heartbeat = setInterval(
      () => {
        client.query('SELECT 1').catch(onError);
      },
      Math.max(250, Math.floor(timeoutMs / 4)),
    );
    heartbeat.unref();
    let releaseCall: Promise<void> | undefined;
    return {
      signal: lost.signal,
      release() {
        releaseCall ??= (async () => {
          released = true;
          clearInterval(heartbeat);
          let broken = lost.signal.aborted;
          await client.query('COMMIT').catch(() => (broken = true));
          client.off('error', onError);
          client.release(broken);
        })();
        return releaseCall;
      },
    };
  }
}
