import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type AuditEvent, FleetError } from '@wallet-fleet/contracts';
import { createSchemaName, type TestSchema } from '@wallet-fleet/testing';
import { createLogger, migrate } from '@wallet-fleet/service-kit';
import pg from 'pg';
import { Registry } from 'prom-client';
import { createIngestHandler } from '../src/handlers/ingest.js';
import { createAuditMetrics } from '../src/metrics.js';
import { createAuditStore, type AuditStore } from '../src/store/audit-store.js';

const migrations = fileURLToPath(new URL('../migrations', import.meta.url));

function event(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    eventId: randomUUID(),
    occurredAt: new Date().toISOString(),
    actor: { type: 'service', id: 'wallet' },
    action: 'wallet.create',
    resource: { type: 'wallet', id: randomUUID() },
    userId: 'user-1',
    status: 'success',
    after: { chain: 'SOL', address: 'So1ana' },
    ...over,
  };
}

describe('audit store (PostgreSQL)', () => {
  let schema: TestSchema;
  /** As the service runs: the runtime role. */
  let pool: pg.Pool;
  /** A superuser, for what the service cannot do. */
  let admin: pg.Pool;
  let store: AuditStore;

  beforeEach(async () => {
    schema = await createSchemaName('audit');
    await migrate({
      databaseUrl: schema.migrationUrl,
      runtimeUrl: schema.runtimeUrl,
      dir: migrations,
      schema: schema.schema,
      logger: createLogger({ service: 'test', level: 'silent' }),
    });
    pool = new pg.Pool({ connectionString: schema.runtimeUrl, options: `-c search_path=${schema.schema}`, max: 8 });
    admin = new pg.Pool({ connectionString: schema.databaseUrl, options: `-c search_path=${schema.schema}`, max: 2 });
    store = createAuditStore(pool);
  });
  afterEach(async () => {
    await pool.end();
    await admin.end();
    await schema.drop();
  });

  // Tampering needs the append-only trigger out of the way: an attacker with owner rights can do that.
  async function tamper(sql: string, params: unknown[] = []): Promise<void> {
    const c = await admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      await c.query(sql, params);
      await c.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      await c.query('COMMIT');
    } finally {
      c.release();
    }
  }

  it('should verify events whose occurredAt has more than millisecond precision or an extreme offset', async () => {
    const odd = ['2026-01-01T00:00:00.9999995Z', '2026-01-01T00:00:00.123456789+14:00', '2026-01-01T12:00:00-23:59', '0001-01-01T00:00:00.0000001Z'];
    assert.deepEqual(
      await store.append(odd.map((occurredAt) => event({ occurredAt }))),
      odd.map(() => 'stored'),
    );
    assert.deepEqual(await store.verify(), { valid: true, checked: odd.length });
  });

  it('should store the neighbours of an event the database refuses, failing only that one', async () => {
    const ingest = createIngestHandler(store, createAuditMetrics(new Registry(), store));
    const good = [event(), event()];
    // Past the contract (a handler test): a NUL that PostgreSQL refuses in a text column.
    const poison = event({ resource: { type: 'wallet', id: 'w\u0000' } });
    const outcomes = await ingest([good[0]!, poison, good[1]!].map((input) => ({ input })));
    assert.equal(outcomes[0], undefined);
    assert.ok(outcomes[1] instanceof FleetError && !outcomes[1].retryable, String(outcomes[1]));
    assert.equal(outcomes[2], undefined);
    assert.equal(await store.length(), 2);
    const stored = (await store.query({ limit: 10 })).items.map((e) => e.eventId).sort();
    assert.deepEqual(stored, good.map((e) => e.eventId).sort());
    assert.deepEqual(await store.verify(), { valid: true, checked: 2 });
  });

  it('should store each event once, however often it arrives', async () => {
    const a = event();
    const b = event();
    assert.deepEqual(await store.append([a, b, a]), ['stored', 'stored', 'duplicate']);
    assert.deepEqual(await store.append([b, event()]), ['duplicate', 'stored']);
    assert.equal(await store.length(), 3);
    assert.deepEqual(await store.verify(), { valid: true, checked: 3 });
  });

  it('should fail an append it cannot finish with a FleetError, store none of it, and not hand its connection to the next caller', async () => {
    const one = new pg.Pool({ connectionString: schema.databaseUrl, options: `-c search_path=${schema.schema}`, max: 1 });
    try {
      const single = createAuditStore(one);
      await single.append([event()]);
      const pidBefore = (await one.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await admin.query('DELETE FROM audit_chain_head');
      await assert.rejects(single.append([event()]), (e: unknown) => e instanceof FleetError && e.code === 'INTERNAL' && /head is missing/.test(e.message));
      const pidAfter = (await one.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      assert.notEqual(pidAfter, pidBefore, 'the client of the failed transaction was dropped, not reused');
      assert.equal((await one.query('SELECT count(*)::int AS n FROM audit_events')).rows[0].n, 1);
    } finally {
      await one.end();
    }
  });

  it('should keep one valid chain when several replicas append at once', async () => {
    const shared = event();
    const batches = Array.from({ length: 8 }, () => [shared, ...Array.from({ length: 25 }, () => event())]);
    await Promise.all(batches.map((b) => store.append(b)));
    assert.equal(await store.length(), 8 * 25 + 1);
    assert.deepEqual(await store.verify(), { valid: true, checked: 201 });
  });

  it('should refuse the runtime role any UPDATE, DELETE or TRUNCATE of events, and any change to the trigger', async () => {
    await store.append([event()]);
    for (const sql of [
      "UPDATE audit_events SET status = 'failed'",
      'DELETE FROM audit_events',
      'TRUNCATE audit_events',
      'ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only',
      'DROP TRIGGER audit_events_append_only ON audit_events',
      'DELETE FROM audit_chain_head',
      'UPDATE audit_chain_head SET singleton = true',
      'DELETE FROM audit_checkpoints',
      "UPDATE audit_checkpoints SET key_version = 'x'",
    ]) {
      await assert.rejects(pool.query(sql), (e: { code?: string }) => e.code === '42501', sql);
    }
    assert.deepEqual(await store.verify(), { valid: true, checked: 1 });
  });

  it('should refuse updates and deletes of stored rows even to their owner while the trigger stands', async () => {
    await store.append([event()]);
    await assert.rejects(admin.query("UPDATE audit_events SET status = 'failed'"), /append-only/);
    await assert.rejects(admin.query('DELETE FROM audit_events'), /append-only/);
    await assert.rejects(admin.query('TRUNCATE audit_events'), /append-only/);
  });

  it("should give the runtime role nothing of another service's schema", async () => {
    const other = await createSchemaName('wallet');
    try {
      const dir = fileURLToPath(new URL('../../wallet/migrations', import.meta.url));
      await migrate({
        databaseUrl: other.migrationUrl,
        runtimeUrl: other.runtimeUrl,
        dir,
        schema: other.schema,
        logger: createLogger({ service: 'test', level: 'silent' }),
      });
      for (const sql of [
        `SELECT * FROM "${other.schema}".wallets`,
        `SELECT * FROM "${other.schema}".outbox`,
        `SELECT * FROM "${other.schema}".outbox_stale('1 minute')`,
      ]) {
        await assert.rejects(pool.query(sql), (e: { code?: string }) => e.code === '42501', sql);
      }
    } finally {
      await other.drop();
    }
  });

  it('should filter by user, action, resource and time, newest first, across cursor pages', async () => {
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const at = (m: number) => new Date(t0 + m * 60_000).toISOString();
    const events = [
      ...Array.from({ length: 7 }, (_, i) => event({ userId: 'alice', occurredAt: at(i), resource: { type: 'wallet', id: 'w-a' } })),
      ...Array.from({ length: 3 }, (_, i) => event({ userId: 'bob', action: 'wallet.setActive', occurredAt: at(i) })),
    ];
    await store.append(events);

    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.query({ userId: 'alice', limit: 3, cursor });
      assert.ok(page.items.length <= 3);
      seen.push(...page.items.map((e) => e.eventId));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    assert.deepEqual(
      seen,
      events
        .slice(0, 7)
        .map((e) => e.eventId)
        .reverse(),
    );

    const bob = await store.query({ action: 'wallet.setActive', limit: 50 });
    assert.deepEqual(new Set(bob.items.map((e) => e.userId)), new Set(['bob']));
    const window = await store.query({ userId: 'alice', from: at(2), to: at(5), limit: 50 });
    assert.deepEqual(window.items.map((e) => e.occurredAt).sort(), [at(2), at(3), at(4)]);
    const byResource = await store.query({ resourceType: 'wallet', resourceId: 'w-a', limit: 50 });
    assert.equal(byResource.items.length, 7);
    assert.equal(byResource.items[0]?.after?.address, 'So1ana');
    await assert.rejects(store.query({ limit: 5, cursor: 'bogus' }), /cursor/);
  });

  describe('verify', () => {
    beforeEach(async () => {
      await store.append(Array.from({ length: 10 }, () => event()));
    });

    it('should report an edited payload at its row', async () => {
      await tamper(`UPDATE audit_events SET payload = replace(payload, 'So1ana', 'Attacker') WHERE sequence = 4`);
      assert.deepEqual(await store.verify(), { valid: false, checked: 3, brokenAt: 4, reason: 'row content does not match its hash' });
    });

    it('should report an edited query column even when the payload is intact', async () => {
      await tamper(`UPDATE audit_events SET user_id = 'mallory' WHERE sequence = 7`);
      const r = await store.verify();
      assert.equal(r.valid, false);
      assert.equal(r.brokenAt, 7);
    });

    it('should report a deleted row in the middle', async () => {
      await tamper('DELETE FROM audit_events WHERE sequence = 5');
      const r = await store.verify();
      assert.equal(r.valid, false);
      assert.equal(r.brokenAt, 5);
    });

    it('should report rows deleted from the end', async () => {
      await tamper('DELETE FROM audit_events WHERE sequence > 8');
      const r = await store.verify();
      assert.equal(r.valid, false);
      assert.equal(r.brokenAt, 9);
    });

    it('should report two rows swapped', async () => {
      await tamper('UPDATE audit_events SET sequence = 1000 WHERE sequence = 2');
      await tamper('UPDATE audit_events SET sequence = 2 WHERE sequence = 3');
      await tamper('UPDATE audit_events SET sequence = 3 WHERE sequence = 1000');
      const r = await store.verify();
      assert.equal(r.valid, false);
      assert.equal(r.brokenAt, 2);
    });

    it('should report a rehashed row by the broken link of its successor', async () => {
      // An attacker who edits a row and recomputes its hash still breaks the next row's link.
      await tamper(`UPDATE audit_events SET status = 'failed', hash = sha256(hash) WHERE sequence = 6`);
      const r = await store.verify();
      assert.equal(r.valid, false);
      assert.equal(r.brokenAt, 6);
    });
  });
});
