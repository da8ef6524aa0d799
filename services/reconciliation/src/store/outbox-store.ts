import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { type Broker, type Outbox, createOutbox } from '@wallet-fleet/messaging';
import { type Logger, databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { PassPorts } from '../handlers/pass.js';

/**
 * Another service's outbox, seen from here: the stale-row count and a relay for flushing it.
 * `stale` throws NOT_FOUND (no outbox in `schema`: a configuration error to report, not
 * retry), UNAVAILABLE or INTERNAL; `flush` throws what the relay throws.
 */
export function createForeignOutboxStore(pool: pg.Pool, schema: string, broker: Broker, logger: Logger, staleAfterMs: number): PassPorts['outboxes'][number] {
  // Not started: only flush() is used, when rows were left behind. SKIP LOCKED keeps it apart from
  // the owner's relay, so a row is never published by both at once.
  let relay: Outbox | undefined;
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
    flush() {
      relay ??= createOutbox({ pool, schema, broker, logger: logger.child({ outbox: schema }) });
      return relay.flush();
    },
  };
}
