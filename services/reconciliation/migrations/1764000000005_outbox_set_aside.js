// Brings the outbox table up to what packages/messaging expects now: `attempts`, `failed_at` and
// `last_error`, so that a row the broker keeps refusing is set aside instead of blocking the rows
// behind it (outboxTableSql is idempotent: it only adds what is missing).
import { outboxTableSql } from '@wallet-fleet/messaging';

export async function up(pgm) {
  const { rows } = await pgm.db.query('SELECT current_schema() AS schema');
  pgm.sql(outboxTableSql(rows[0].schema));
}

export function down(pgm) {
  pgm.sql('ALTER TABLE outbox DROP COLUMN IF EXISTS attempts, DROP COLUMN IF EXISTS failed_at, DROP COLUMN IF EXISTS last_error');
}
