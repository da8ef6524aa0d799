import { withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { PoolKind } from './wallet-store.js';

export type KeyPoolStore = ReturnType<typeof createKeyPoolStore>;

/**
 * The refiller's SQL on `key_pool` (a create takes its key through the wallet store, in the
 * wallet's own transaction). Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL`
 * for a database failure.
 */
export function createKeyPoolStore(pool: pg.Pool) {
  return {
    /** Unassigned keys of `kind`. */
    countUnassigned: (kind: PoolKind) =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM key_pool WHERE wallet_id IS NULL AND algorithm = $1 AND protection_level = $2',
          [kind.algorithm, kind.protectionLevel],
        );
        return rows[0]!.n;
      }),

    /** Records a ready key as unassigned (a key recorded already stays as it is). */
    add: (kind: PoolKind, key: { keyVersionName: string; publicKey: Uint8Array }) =>
      withDatabaseErrors(async () => {
        await pool.query(
          `INSERT INTO key_pool (kms_key_version, algorithm, protection_level, public_key) VALUES ($1, $2, $3, $4)
           ON CONFLICT (kms_key_version) DO NOTHING`,
          [key.keyVersionName, kind.algorithm, kind.protectionLevel, Buffer.from(key.publicKey)],
        );
      }),

    /**
     * Runs `fn` while holding the schema's refill lock (a session advisory lock on its own
     * connection), so that replicas do not all fill the same deficit; `undefined` without running it
     * when another replica holds the lock. A crashed holder's lock ends with its connection.
     */
    withRefillLock: async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
      const client = await withDatabaseErrors(() => pool.connect());
      // A connection whose lock or unlock statement failed may hold the lock: destroyed, not reused.
      let healthy = false;
      try {
        const { rows } = await withDatabaseErrors(() =>
          client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(hashtext(current_schema() || '.key_pool')) AS locked`),
        );
        healthy = true;
        if (!rows[0]!.locked) return undefined;
        try {
          return await fn();
        } finally {
          healthy = false;
          await client.query(`SELECT pg_advisory_unlock(hashtext(current_schema() || '.key_pool'))`);
          healthy = true;
        }
      } finally {
        client.release(!healthy);
      }
    },
  };
}
