import type pg from 'pg';

export interface TransactionOptions {
  /** Default: the server's (READ COMMITTED). */
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
  readOnly?: boolean;
}

/** Callbacks to run once the transaction open on a client (inside `inTransaction`) commits. */
const commitHooks = new WeakMap<pg.ClientBase, Array<() => void>>();

/**
 * Runs `hook` once the transaction that `inTransaction` holds open on `client` has committed (never
 * on rollback). Returns false, registering nothing, when `client` is not inside `inTransaction`: the
 * caller must then not count on the hook. A hook that throws is ignored (the commit stands).
 */
export function afterCommit(client: pg.ClientBase, hook: () => void): boolean {
  const hooks = commitHooks.get(client);
  hooks?.push(hook);
  return hooks !== undefined;
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
  const hooks: Array<() => void> = [];
  commitHooks.set(client, hooks);
  try {
    await client.query(`BEGIN${opts.isolation ? ` ISOLATION LEVEL ${opts.isolation.toUpperCase()}` : ''}${opts.readOnly ? ' READ ONLY' : ''}`);
    const result = await fn(client);
    await client.query('COMMIT');
    ok = true;
    commitHooks.delete(client);
    for (const hook of hooks) {
      try {
        hook();
      } catch {
        // The commit stands whatever a hook does; hooks are wake-ups, not part of the transaction.
      }
    }
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    commitHooks.delete(client);
    client.release(!ok);
  }
}
