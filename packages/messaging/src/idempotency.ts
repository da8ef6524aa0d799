import type pg from 'pg';
import { schemaIdent } from './sql.js';

/**
 * DDL of `<schema>.processed_messages` (idempotent). Services put it into their own migrations:
 * `pgm.sql(idempotencyTableSql(schema))`.
 */
export function idempotencyTableSql(schema: string): string {
  const s = schemaIdent(schema);
  return `CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.processed_messages (
  consumer text NOT NULL,
  key text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, key)
);
CREATE INDEX IF NOT EXISTS processed_messages_processed_at ON ${s}.processed_messages (processed_at);`;
}

export interface IdempotencyStore {
  /**
   * Claims `key` (a message_id or event id) for `consumer` inside the caller's open transaction:
   * true the first time, false when already claimed. Claim and effect commit or roll back
   * together; a concurrent claim of the same key waits for the first transaction and then gets
   * false. Throws the pg error when the table is missing.
   */
  claim(client: pg.ClientBase, consumer: string, key: string): Promise<boolean>;
  /** Deletes claims older than `olderThan` (redeliveries come within minutes, not months). */
  prune(olderThan: Date): Promise<number>;
}

/** Dedupe of redelivered or duplicated messages. Throws Error on an invalid schema name. */
export function createIdempotencyStore(opts: { pool: pg.Pool; schema: string }): IdempotencyStore {
  const table = `${schemaIdent(opts.schema)}.processed_messages`;
  return {
    async claim(client, consumer, key) {
      const r = await client.query(`INSERT INTO ${table} (consumer, key) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [consumer, key]);
      return r.rowCount === 1;
    },
    async prune(olderThan) {
      const r = await opts.pool.query(`DELETE FROM ${table} WHERE processed_at < $1`, [olderThan]);
      return r.rowCount ?? 0;
    },
  };
}
