import type { AuditCheckpoint, AuditEvent, AuditQueryResult, AuditVerifyResult, StoredAuditEvent } from '@wallet-fleet/contracts';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import { GENESIS_HASH, canonicalPayload, rowHash } from '../chain.js';

export type AppendOutcome = 'stored' | 'duplicate';

export interface AuditQuery {
  userId?: string | undefined;
  action?: string | undefined;
  resourceType?: string | undefined;
  resourceId?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Every method throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a database failure. */
export interface AuditStore {
  /** Appends events in order, skipping those whose eventId is stored already (or repeated in `events`). */
  append(events: readonly AuditEvent[]): Promise<AppendOutcome[]>;
  /** Newest first. Throws VALIDATION_FAILED for a cursor we did not issue. */
  query(q: AuditQuery): Promise<AuditQueryResult>;
  /**
   * Walks the whole chain in one snapshot; with `anchor` (a signed checkpoint, its signature checked
   * by the caller) row `anchor.sequence` must also carry `anchor.hash`.
   */
  verify(anchor?: Pick<AuditCheckpoint, 'sequence' | 'hash'>): Promise<AuditVerifyResult>;
  /** Number of rows in the chain (from its head). */
  length(): Promise<number>;
  /** The chain head: its sequence and hex hash. */
  head(): Promise<{ sequence: number; hash: string }>;
  /** Keeps a signed checkpoint. */
  addCheckpoint(c: AuditCheckpoint): Promise<void>;
  /** The checkpoint of the highest sequence (the latest signed of those), if any. */
  latestCheckpoint(): Promise<AuditCheckpoint | undefined>;
}

interface Row {
  sequence: string;
  event_id: string;
  occurred_at: Date;
  recorded_at: Date;
  actor_type: string;
  actor_id: string;
  action: string;
  resource_type: string;
  resource_id: string;
  user_id: string | null;
  status: string;
  correlation_id: string | null;
  payload: string;
  prev_hash: Buffer;
  hash: Buffer;
}

const VERIFY_PAGE = 2000;

/** SQL of the audit log. `pool` connections must have the service's schema on their search_path. */
export function createAuditStore(pool: pg.Pool): AuditStore {
  return {
    append: (events) => withDatabaseErrors(() => append(pool, events)),
    query: (q) => withDatabaseErrors(() => query(pool, q)),
    verify: (anchor) => withDatabaseErrors(() => verify(pool, anchor)),
    length: () =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ sequence: string }>('SELECT sequence FROM audit_chain_head');
        return Number(rows[0]?.sequence ?? 0);
      }),
    head: () =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ sequence: string; hash: Buffer }>('SELECT sequence, hash FROM audit_chain_head');
        if (!rows[0]) throw new FleetError(ErrorCode.INTERNAL, 'audit chain head is missing');
        return { sequence: Number(rows[0].sequence), hash: rows[0].hash.toString('hex') };
      }),
    addCheckpoint: (c) =>
      withDatabaseErrors(async () => {
        await pool.query(
          `INSERT INTO audit_checkpoints (checkpoint_id, sequence, hash, signed_at, key_version, signature)
           VALUES ($1, $2, decode($3, 'hex'), $4, $5, decode($6, 'hex'))`,
          [c.checkpointId, c.sequence, c.hash, c.signedAt, c.keyVersion, c.signature],
        );
      }),
    latestCheckpoint: () =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ checkpoint_id: string; sequence: string; hash: Buffer; signed_at: Date; key_version: string; signature: Buffer }>(
          'SELECT * FROM audit_checkpoints ORDER BY sequence DESC, signed_at DESC LIMIT 1',
        );
        const r = rows[0];
        if (!r) return undefined;
        return {
          checkpointId: r.checkpoint_id,
          sequence: Number(r.sequence),
          hash: r.hash.toString('hex'),
          signedAt: r.signed_at.toISOString(),
          keyVersion: r.key_version,
          signature: r.signature.toString('hex'),
        };
      }),
  };
}

async function append(pool: pg.Pool, events: readonly AuditEvent[]): Promise<AppendOutcome[]> {
  if (events.length === 0) return [];
  // Serialised before the lock: the head lock is held only for hashing and the statements.
  const payloads = events.map(canonicalPayload);
  return inTransaction(pool, async (client) => {
    // The head row lock serialises appends of every replica: the chain needs one order. Duplicates
    // are looked up under the same lock, so two replicas cannot both decide an event is new.
    const head = await client.query<{ sequence: string; hash: Buffer }>('SELECT sequence, hash FROM audit_chain_head FOR UPDATE');
    if (!head.rows[0]) throw new FleetError(ErrorCode.INTERNAL, 'audit chain head is missing');
    const known = await client.query<{ event_id: string }>('SELECT event_id FROM audit_events WHERE event_id = ANY($1::uuid[])', [
      events.map((e) => e.eventId),
    ]);
    const seen = new Set(known.rows.map((r) => r.event_id));

    let sequence = Number(head.rows[0].sequence);
    let prev = head.rows[0].hash;
    const recordedAt = new Date().toISOString();
    const rows: unknown[] = [];
    const outcomes: AppendOutcome[] = [];
    for (const [n, event] of events.entries()) {
      const id = event.eventId.toLowerCase();
      if (seen.has(id)) {
        outcomes.push('duplicate');
        continue;
      }
      seen.add(id);
      sequence += 1;
      const payload = payloads[n]!;
      const hash = rowHash(prev, sequence, recordedAt, payload);
      rows.push({
        s: sequence,
        e: id,
        // Normalised by the same parser verify() reads the payload back with (milliseconds, UTC):
        // PostgreSQL would round extra digits its own way and verify would see a mismatch.
        o: new Date(Date.parse(event.occurredAt)).toISOString(),
        at: event.actor.type,
        ai: event.actor.id,
        a: event.action,
        rt: event.resource.type,
        ri: event.resource.id,
        u: event.userId ?? null,
        st: event.status,
        c: event.correlationId ?? null,
        p: payload,
        ph: prev.toString('hex'),
        h: hash.toString('hex'),
      });
      prev = hash;
      outcomes.push('stored');
    }
    if (rows.length > 0) {
      // All rows travel as one JSON parameter: JSON.stringify is native and PostgreSQL parses it
      // fast, where fifteen array parameters cost a JS-side escape of every element.
      await client.query(
        `INSERT INTO audit_events (sequence, event_id, occurred_at, recorded_at, actor_type, actor_id, action,
           resource_type, resource_id, user_id, status, correlation_id, payload, prev_hash, hash)
         SELECT r.s, r.e, r.o, $2::timestamptz, r.at, r.ai, r.a, r.rt, r.ri, r.u, r.st, r.c, r.p,
                decode(r.ph, 'hex'), decode(r.h, 'hex')
           FROM json_to_recordset($1::json) AS r(s bigint, e uuid, o timestamptz, at text, ai text, a text,
                rt text, ri text, u text, st text, c text, p text, ph text, h text)`,
        [JSON.stringify(rows), recordedAt],
      );
      await client.query('UPDATE audit_chain_head SET sequence = $1, hash = $2', [sequence, prev]);
    }
    return outcomes;
  });
}

function encodeCursor(sequence: number): string {
  return Buffer.from(`s:${sequence}`).toString('base64url');
}

function decodeCursor(cursor: string): number {
  const m = /^s:([1-9][0-9]{0,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw FleetError.validation([{ path: 'cursor', message: 'not a cursor returned by wallet.audit.query' }]);
  return Number(m[1]);
}

function toStored(row: Row): StoredAuditEvent {
  return {
    ...(JSON.parse(row.payload) as AuditEvent),
    sequence: Number(row.sequence),
    recordedAt: row.recorded_at.toISOString(),
    hash: row.hash.toString('hex'),
  };
}

async function query(pool: pg.Pool, q: AuditQuery): Promise<AuditQueryResult> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    params.push(value);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (q.userId !== undefined) add('user_id = ?', q.userId);
  if (q.action !== undefined) add('action = ?', q.action);
  if (q.resourceType !== undefined) add('resource_type = ?', q.resourceType);
  if (q.resourceId !== undefined) add('resource_id = ?', q.resourceId);
  if (q.from !== undefined) add('occurred_at >= ?', q.from);
  if (q.to !== undefined) add('occurred_at < ?', q.to);
  if (q.cursor !== undefined) add('sequence < ?', decodeCursor(q.cursor));
  params.push(q.limit + 1);
  const text = `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY sequence DESC LIMIT $${params.length}`;
  // Named by its filters (at most 2^7 shapes): each connection parses and plans a shape once.
  const { rows } = await pool.query<Row>({ name: `audit-query:${where.map((w) => w.split(' ')[0]).join(',')}`, text, values: params });
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    items: page.map(toStored),
    nextCursor: rows.length > q.limit && last ? encodeCursor(Number(last.sequence)) : null,
  };
}

/** Why a row does not verify, or undefined when it does. */
function checkRow(row: Row, expectedSequence: number, prev: Buffer): string | undefined {
  const sequence = Number(row.sequence);
  if (sequence !== expectedSequence) return `expected sequence ${expectedSequence}, found ${sequence} (rows missing or inserted)`;
  if (!row.prev_hash.equals(prev)) return 'previous-hash link does not match the previous row';
  const hash = rowHash(prev, sequence, row.recorded_at.toISOString(), row.payload);
  if (!hash.equals(row.hash)) return 'row content does not match its hash';
  let event: AuditEvent;
  try {
    event = JSON.parse(row.payload) as AuditEvent;
  } catch {
    return 'payload is not JSON';
  }
  const copies: Array<[unknown, unknown]> = [
    [row.event_id, event.eventId?.toLowerCase()],
    [row.occurred_at.getTime(), Date.parse(event.occurredAt)],
    [row.actor_type, event.actor?.type],
    [row.actor_id, event.actor?.id],
    [row.action, event.action],
    [row.resource_type, event.resource?.type],
    [row.resource_id, event.resource?.id],
    [row.user_id, event.userId ?? null],
    [row.status, event.status],
    [row.correlation_id, event.correlationId ?? null],
  ];
  if (copies.some(([a, b]) => a !== b)) return 'query columns do not match the hashed payload';
  return undefined;
}

function verify(pool: pg.Pool, anchor: Pick<AuditCheckpoint, 'sequence' | 'hash'> | undefined): Promise<AuditVerifyResult> {
  // One snapshot for the head and every page: appends running meanwhile are neither half-seen nor
  // mistaken for tampering.
  return inTransaction(
    pool,
    async (client) => {
      const head = await client.query<{ sequence: string; hash: Buffer }>('SELECT sequence, hash FROM audit_chain_head');
      const headSequence = Number(head.rows[0]?.sequence ?? 0);
      let prev: Buffer = GENESIS_HASH;
      let expected = 1;
      let checked = 0;
      // A rewrite that recomputed every hash and the head is consistent in itself; only the signed
      // hash tells it apart. Its row cannot be named: any row up to the checkpoint may be the one.
      const anchored = (): AuditVerifyResult | undefined =>
        anchor && checked === anchor.sequence && prev.toString('hex') !== anchor.hash
          ? {
              valid: false,
              checked,
              brokenAt: Math.max(1, anchor.sequence),
              reason: `the chain up to ${anchor.sequence} does not match its signed checkpoint (rows up to it were rewritten)`,
            }
          : undefined;
      const atGenesis = anchored();
      if (atGenesis) return atGenesis;
      for (;;) {
        const { rows } = await client.query<Row>('SELECT * FROM audit_events WHERE sequence >= $1 ORDER BY sequence LIMIT $2', [expected, VERIFY_PAGE]);
        for (const row of rows) {
          const problem = checkRow(row, expected, prev);
          if (problem) return { valid: false, checked, brokenAt: expected, reason: problem };
          prev = row.hash;
          expected += 1;
          checked += 1;
          const broken = anchored();
          if (broken) return broken;
        }
        if (rows.length < VERIFY_PAGE) break;
      }
      if (anchor && checked < anchor.sequence) {
        return {
          valid: false,
          checked,
          brokenAt: checked + 1,
          reason: `chain ends at ${checked} but a signed checkpoint says it had ${anchor.sequence} rows (rows removed)`,
        };
      }
      if (checked !== headSequence || !(head.rows[0]?.hash ?? GENESIS_HASH).equals(prev)) {
        return {
          valid: false,
          checked,
          brokenAt: checked + 1,
          reason: `chain ends at ${checked} but its head says ${headSequence} (rows removed from the end)`,
        };
      }
      return { valid: true, checked };
    },
    { isolation: 'repeatable read', readOnly: true },
  );
}
