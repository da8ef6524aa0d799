import type pg from 'pg';

export interface TransactionOptions {
  /** Default: the server's (READ COMMITTED). */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  readOnly?: boolean;
}

/**
 * Runs `fn` in a transaction on one pooled client: COMMIT when it resolves, ROLLBACK when it throws
 * (what it threw is rethrown unchanged, so callers still see SQLSTATEs such as 23505). A client
 * whose transaction failed is destroyed rather than handed to the next caller: it may be mid-way
 * through a broken connection. Errors of `pool.connect()` are rethrown as they are.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
  const client = await pool.connect();
  let ok = false;
  try {
    await client.query(`BEGIN${opts.isolation ? ` ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : ''}${opts.readOnly ? ' READ ONLY' : ''}`);
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
