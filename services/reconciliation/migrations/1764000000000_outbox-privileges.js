// The runtime role's privileges on the outbox, and the one function reconciliation may call here
// (packages/messaging's outboxPrivilegesSql; the runtime role comes from the migration runner).
import { outboxPrivilegesSql } from '@wallet-fleet/messaging';

export async function up(pgm) {
  const { rows } = await pgm.db.query('SELECT current_schema() AS schema');
  pgm.sql(outboxPrivilegesSql(rows[0].schema));
}

export function down(pgm) {
  pgm.sql('DROP FUNCTION outbox_stale(interval)');
}
