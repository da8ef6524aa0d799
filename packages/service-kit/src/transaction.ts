import type pg from 'pg';

/**
 * Runs `fn` in a transaction on one pooled client: COMMIT when it resolves, ROLLBACK when it throws
 * (what it threw is rethrown unchanged, so callers still see SQLSTATEs such as 23505). A client
 * whose transaction failed is destroyed rather than handed to the next caller: it may be mid-way
 * through a broken connection. Errors of `pool.connect()` are rethrown as they are.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let ok = false;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    ok = true;
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release(!ok);
  }
}
