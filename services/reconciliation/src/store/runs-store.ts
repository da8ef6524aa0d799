import type { Outbox, OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';

export type RunStatus = 'running' | 'completed' | 'failed' | 'abandoned';
export type RunTrigger = 'schedule' | 'manual';

export interface RunRow {
  runId: string;
  instance: string;
  trigger: RunTrigger;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  report: Record<string, unknown>;
  error: string | null;
}

const COLUMNS = `run_id, instance, trigger, status, started_at, finished_at, report, error`;
interface Raw {
  run_id: string;
  instance: string;
  trigger: RunTrigger;
  status: RunStatus;
  started_at: Date;
  finished_at: Date | null;
  report: Record<string, unknown>;
  error: string | null;
}
const toRow = (r: Raw): RunRow => ({
  runId: r.run_id,
  instance: r.instance,
  trigger: r.trigger,
  status: r.status,
  startedAt: r.started_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  report: r.report,
  error: r.error,
});

export type RunsStore = ReturnType<typeof createRunsStore>;

/** The pass runs' table. Every method throws FleetError UNAVAILABLE (retryable) or INTERNAL on a database error. */
export function createRunsStore(pool: pg.Pool, outbox: Pick<Outbox, 'enqueue'>) {
  return {
    /**
     * Called by the lock holder only: any row still `running` belongs to a holder that died, and is
     * marked `abandoned`. Then the new run's row. Returns how many were abandoned.
     */
    begin: (run: { runId: string; instance: string; trigger: RunTrigger }): Promise<number> =>
      withDatabaseErrors(async () => {
        const abandoned = await pool.query(`UPDATE reconciliation_runs SET status = 'abandoned', finished_at = now() WHERE status = 'running'`);
        await pool.query(`INSERT INTO reconciliation_runs (run_id, instance, trigger, status) VALUES ($1, $2, $3, 'running')`, [
          run.runId,
          run.instance,
          run.trigger,
        ]);
        return abandoned.rowCount ?? 0;
      }),

    /** Seconds since the last completed pass finished, or undefined when none did. */
    sinceLastCompleted: (): Promise<number | undefined> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ s: number | null }>(
          `SELECT extract(epoch FROM now() - max(finished_at))::float8 AS s FROM reconciliation_runs WHERE status = 'completed'`,
        );
        return rows[0]?.s ?? undefined;
      }),

    /** Finishes the run and enqueues its audit event in one transaction. */
    finish: (
      runId: string,
      status: 'completed' | 'failed',
      report: Record<string, unknown>,
      error: string | undefined,
      messages: OutboxMessage[],
    ): Promise<void> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          await client.query(`UPDATE reconciliation_runs SET status = $2, finished_at = now(), report = $3::jsonb, error = $4 WHERE run_id = $1`, [
            runId,
            status,
            JSON.stringify(report),
            error ?? null,
          ]);
          await outbox.enqueue(client, messages);
        }),
      ),

    /** Newest first. */
    list: (limit: number): Promise<RunRow[]> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<Raw>(`SELECT ${COLUMNS} FROM reconciliation_runs ORDER BY started_at DESC LIMIT $1`, [limit]);
        return rows.map(toRow);
      }),
  };
}
