import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { backingServices } from './backing.js';

export interface TestSchema {
  schema: string;
  databaseUrl: string;
  drop(): Promise<void>;
}

/** A fresh PostgreSQL schema name for one test or suite (created by the code under test, dropped here). */
export async function createSchemaName(prefix = 't'): Promise<TestSchema> {
  const { databaseUrl } = await backingServices();
  const schema = `${prefix}_${randomBytes(5).toString('hex')}`;
  return {
    schema,
    databaseUrl,
    drop: async () => {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  };
}
