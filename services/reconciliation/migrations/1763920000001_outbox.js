// The transactional outbox table, as packages/messaging defines it, in this service's schema
// (node-pg-migrate runs migrations with the service's schema as search_path).
import { outboxTableSql } from '@wallet-fleet/messaging';

export async function up(pgm) {
  const { rows } = await pgm.db.query('SELECT current_schema() AS schema');
  pgm.sql(outboxTableSql(rows[0].schema));
}

export function down(pgm) {
  pgm.sql('DROP TABLE outbox');
}
