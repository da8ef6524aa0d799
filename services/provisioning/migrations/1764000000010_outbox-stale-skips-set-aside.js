// Reconciliation's count of left-behind outbox rows skips the rows set aside (they page through
// OutboxRowSetAside already); packages/messaging's outboxPrivilegesSql, now that `failed_at` exists.
import { outboxPrivilegesSql } from '@wallet-fleet/messaging';

export async function up(pgm) {
  const { rows } = await pgm.db.query('SELECT current_schema() AS schema');
  pgm.sql(outboxPrivilegesSql(rows[0].schema, { skipSetAside: true }));
}

export async function down(pgm) {
  const { rows } = await pgm.db.query('SELECT current_schema() AS schema');
  pgm.sql(outboxPrivilegesSql(rows[0].schema));
}
