import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { PassPorts } from '../handlers/pass.js';

/**
 * Another service's outbox, seen from here: how many rows its relay left behind and how old the
 * oldest is. Read only: publishing them would need that service's broker identity (a message's
 * `user_id` is its publisher's broker user); its own relay's poll publishes them once it runs.
 * `stale` throws NOT_FOUND (no outbox table in `schema`: a configuration error to report, not
 * retry), UNAVAILABLE or INTERNAL.
 */
export function createForeignOutboxStore(pool: pg.Pool, schema: string, staleAfterMs: number): PassPorts['outboxes'][number] {
  return {
    schema,
    async stale() {
      let rows: Array<{ n: string; oldest: number | null }>;
      try {
        ({ rows } = await pool.query<{ n: string; oldest: number | null }>(
          `SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS oldest
             FROM "${schema}".outbox WHERE created_at < now() - make_interval(secs => $1)`,
          [staleAfterMs / 1000],
        ));
      } catch (e) {
        if ((e as { code?: string }).code === '42P01') throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, `no outbox table in schema ${schema}`);
        throw databaseError(e);
      }
      return { rows: Number(rows[0]?.n ?? 0), oldestSeconds: rows[0]?.oldest == null ? null : Math.round(rows[0].oldest) };
    },
  };
}
