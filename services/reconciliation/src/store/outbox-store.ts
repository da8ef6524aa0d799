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
        // Through the schema's own SECURITY DEFINER function (its migrations define it and grant it
        // to wallet_fleet_outbox_reader): this role has no privilege on the table itself.
        ({ rows } = await pool.query<{ n: string; oldest: number | null }>(
          `SELECT stale_rows AS n, oldest_seconds AS oldest FROM "${schema}".outbox_stale(make_interval(secs => $1))`,
          [staleAfterMs / 1000],
        ));
      } catch (e) {
        const code = (e as { code?: string }).code;
        // 3F000: no such schema; 42883: no such function (the schema has no outbox).
        if (code === '3F000' || code === '42883') throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, `no outbox in schema ${schema}`);
        throw databaseError(e);
      }
      return { rows: Number(rows[0]?.n ?? 0), oldestSeconds: rows[0]?.oldest == null ? null : Math.round(rows[0].oldest) };
    },
  };
}
