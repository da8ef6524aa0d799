import { randomUUID } from 'node:crypto';
import { ErrorCode, Exchanges, FleetError, Headers, eventNameOf, events, fieldErrors, isFleetError } from '@wallet-fleet/contracts';
import { afterCommit, getOrCreateMetric, type Logger } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import { Counter, Registry } from 'prom-client';
import { validationFailed } from './errors.js';
import { CORRELATION_HEADER, outgoingTrace } from './headers.js';
import { schemaIdent } from './sql.js';
import type { Broker } from './types.js';

/** A message to publish once the caller's transaction commits. */
export interface OutboxMessage {
  /** Default `wallet.events`. */
  exchange?: string;
  routingKey: string;
  payload: unknown;
  /** Default a new uuid; consumers dedupe on it. */
  messageId?: string;
  headers?: Record<string, string>;
}

export interface Outbox {
  /**
   * Inserts the messages in the caller's open transaction (`client` inside BEGIN … COMMIT).
   * Events on `wallet.events` are validated first: throws VALIDATION_FAILED, nothing inserted.
   */
  enqueue(client: pg.ClientBase, messages: OutboxMessage | readonly OutboxMessage[]): Promise<void>;
  /**
   * Inserts the messages on their own through the outbox's pool: one statement, its own commit (no
   * transaction to open), then wakes this process's relay (a NOTIFY when it does not run here). Resolves once they are committed.
   * Validated as in `enqueue`: throws VALIDATION_FAILED; the driver's error when the insert fails.
   */
  write(messages: OutboxMessage | readonly OutboxMessage[]): Promise<void>;
  /**
   * `enqueue` as SQL for the caller's own statement, so that a business row and its messages commit
   * in one round trip (one statement is one transaction): an `INSERT … SELECT … FROM (VALUES …)` to
   * use as a data-modifying CTE, with parameters numbered from `firstParam`. The caller may append
   * a `WHERE` over its own CTEs (e.g. `WHERE EXISTS (SELECT 1 FROM ins)`). Sends no NOTIFY: the
   * caller drives the relay itself (`watch(…).settled()`); other relays find the rows by their poll.
   * Validated as in `enqueue`: throws VALIDATION_FAILED.
   */
  insertSql(messages: OutboxMessage | readonly OutboxMessage[], firstParam: number): { sql: string; values: unknown[] };
  /**
   * Asks this process's relay for a pass soon, joining one queued already; returns at once. For a
   * caller that committed rows of `insertSql` and does not wait for their publishing: without it
   * they wait for a poll. Does nothing while the relay does not run here (other relays poll).
   */
  wake(): void;
  /** Starts the relay: LISTEN/NOTIFY wake-ups plus a poll fallback. Safe to call twice. */
  start(): Promise<void>;
  /** Stops the relay after the pass in flight. Safe to call twice. */
  stop(): Promise<void>;
  /** Relays until nothing is pending; returns how many messages this call published. */
  flush(): Promise<number>;
  /**
   * Starts watching for this relay publishing `messageIds`. Call it before the transaction that
   * enqueues them commits: a pass woken by that commit's NOTIFY may publish them before the caller
   * gets to `settled()`, and a watch only sees passes that end after it was created.
   */
  watch(messageIds: readonly string[]): PublishWatch;
}

/**
 * What a caller that must answer only after its messages are confirmed waits on, without a query of
 * its own: the relay resolves it by message id after the pass that published them has its broker
 * confirms and has committed the delete.
 */
export interface PublishWatch {
  /**
   * Asks for a relay pass (joining one queued but not yet started) and resolves `true` once every
   * watched message was published by this relay, or `false` once the passes that started after this
   * call have ended without some of them: another relay holds them (a replica mid-publish), they
   * were published before the watch began, or they were never committed. On `false` the caller
   * checks the table itself. Rejects when a pass fails before all were published (broker down:
   * UNAVAILABLE), the rows then stay for a later pass.
   */
  settled(): Promise<boolean>;
  /** Stops watching; call it once done, and when the enqueueing transaction rolled back. */
  close(): void;
}

export interface OutboxOptions {
  pool: pg.Pool;
  schema: string;
  broker: Pick<Broker, 'publish'>;
  logger: Logger;
  registry?: Registry;
  /** Poll fallback when a NOTIFY is missed (listener reconnecting), default 1000 ms. */
  pollIntervalMs?: number;
  /** Rows per relay transaction, default 100. */
  batchSize?: number;
  /**
   * A row the broker refuses this many times (no such exchange, no access, a property it will
   * not take) is set aside (`failed_at`), default 5; one whose properties are invalid at once.
   */
  maxAttempts?: number;
}

/**
 * DDL of `<schema>.outbox` (idempotent: it also brings an older table up to date, so a service's
 * later migration calls it again). Services put it into their own migrations:
 * `pgm.sql(outboxTableSql(schema))`. The payload is stored as text so that exactly the bytes
 * enqueued are published (jsonb would reorder keys). A row the broker keeps refusing gets
 * `failed_at` and is skipped from then on; `attempts` and `last_error` say why.
 */
export function outboxTableSql(schema: string): string {
  const s = schemaIdent(schema);
  return `CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.outbox (
  id bigserial PRIMARY KEY,
  exchange text NOT NULL,
  routing_key text NOT NULL,
  message_id text NOT NULL,
  payload text NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  correlation_id text,
  traceparent text,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE ${s}.outbox
  ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS failed_at timestamptz,
  ADD COLUMN IF NOT EXISTS last_error text;`;
}

/** The group role that may count another service's stale outbox rows (reconciliation's runtime role is a member). */
const OUTBOX_READER_ROLE = 'wallet_fleet_outbox_reader';

/**
 * DCL of `<schema>.outbox` for the service's runtime role (migration-time setting
 * `wallet_fleet.runtime_role`, see service-kit's `migrate`): what its relay needs (`FOR UPDATE SKIP
 * LOCKED` needs UPDATE), and `<schema>.outbox_stale(interval)`, a SECURITY DEFINER count of rows
 * older than the interval that `OUTBOX_READER_ROLE` may call: the only thing another service sees
 * of this schema. Services put it into their own migrations after `outboxTableSql`.
 */
export function outboxPrivilegesSql(schema: string, opts: { skipSetAside?: boolean } = {}): string {
  // Rows set aside (`failed_at`) have their own metric and alert (OutboxRowSetAside): counting them as
  // left behind too would page twice for one row. Only once the column exists (a later migration).
  const live = opts.skipSetAside ? ' AND failed_at IS NULL' : '';
  const s = schemaIdent(schema);
  return `DO $grant$
DECLARE runtime text := coalesce(nullif(current_setting('wallet_fleet.runtime_role', true), ''), current_user);
BEGIN
  EXECUTE format('GRANT USAGE ON SCHEMA ${s} TO %I', runtime);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ${s}.outbox TO %I', runtime);
  EXECUTE format('GRANT USAGE ON SEQUENCE ${s}.outbox_id_seq TO %I', runtime);
END $grant$;
CREATE OR REPLACE FUNCTION ${s}.outbox_stale(older_than interval, OUT stale_rows bigint, OUT oldest_seconds double precision)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ${s}, pg_temp
  AS $body$ SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM ${s}.outbox WHERE created_at < now() - older_than${live} $body$;
REVOKE ALL ON FUNCTION ${s}.outbox_stale(interval) FROM PUBLIC;
GRANT USAGE ON SCHEMA ${s} TO ${OUTBOX_READER_ROLE};
GRANT EXECUTE ON FUNCTION ${s}.outbox_stale(interval) TO ${OUTBOX_READER_ROLE};`;
}

const COLUMNS = 'exchange, routing_key, message_id, payload, headers, correlation_id, traceparent';

interface Row {
  id: string;
  exchange: string;
  routing_key: string;
  message_id: string;
  payload: string;
  headers: Record<string, string>;
  correlation_id: string | null;
  traceparent: string | null;
  attempts: number;
}

const LAST_ERROR_MAX = 1024;

/**
 * Transactional outbox: rows written with the business change, published after commit by a relay.
 * A relay pass locks pending rows `FOR UPDATE SKIP LOCKED` in id order, publishes them with
 * confirms, deletes them and commits: several relays never publish one row concurrently, and a
 * crash between publish and commit publishes again (at-least-once; consumers dedupe by message_id).
 * Throws Error on an invalid schema name.
 */
export function createOutbox(opts: OutboxOptions): Outbox {
  return new OutboxRelay(opts);
}

class OutboxRelay implements Outbox {
  private readonly table: string;
  private readonly channel: string;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly maxAttempts: number;
  private readonly published: Counter<'outcome'>;
  private listener: pg.PoolClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  /** The drain queued behind the pass in flight and not yet started, which new callers join. */
  private queuedDrain: Promise<void> | undefined;
  private readonly watchers = new Map<string, Set<Watch>>();
  private running = false;
  private startCall: Promise<void> | undefined;
  private stopCall: Promise<void> | undefined;

  constructor(private readonly o: OutboxOptions) {
    this.table = `${schemaIdent(o.schema)}.outbox`;
    this.channel = `outbox_${o.schema}`;
    this.batchSize = o.batchSize ?? 100;
    this.pollIntervalMs = o.pollIntervalMs ?? 1000;
    this.maxAttempts = o.maxAttempts ?? 5;
    if (!(Number.isInteger(this.maxAttempts) && this.maxAttempts >= 1)) throw new Error('maxAttempts must be an integer >= 1');
    const registry = o.registry ?? new Registry();
    this.published = getOrCreateMetric(
      registry,
      'messaging_outbox_relayed_total',
      () =>
        new Counter({
          name: 'messaging_outbox_relayed_total',
          help: 'Outbox rows relayed, by outcome (published; refused by the broker; set_aside after repeated refusals; failed: a pass that failed)',
          labelNames: ['outcome'] as const,
          registers: [registry],
        }),
    );
  }

  async enqueue(client: pg.ClientBase, messages: OutboxMessage | readonly OutboxMessage[]): Promise<void> {
    const { tuples, values } = this.rows(messages, 1, '');
    if (tuples.length === 0) return;
    // Rows written inside `inTransaction` while this process's relay runs wake that relay after the
    // commit, in process: no NOTIFY, because commits that carry one serialize in PostgreSQL (a
    // global lock held through the commit's WAL flush; measured here 1,234-2,089 commits/s with
    // against 4,081-4,756/s without, 32 at once). Every process that writes rows to an outbox runs
    // its relay, so rows of other processes are relayed by theirs; a process without a running
    // relay (or a transaction of its own) still sends the NOTIFY for the relays that listen.
    const local = this.running && afterCommit(client, () => this.wake());
    await this.insert(client, tuples, values, !local);
  }

  async write(messages: OutboxMessage | readonly OutboxMessage[]): Promise<void> {
    const { tuples, values } = this.rows(messages, 1, '');
    if (tuples.length === 0) return;
    const local = this.running;
    await this.insert(this.o.pool, tuples, values, !local);
    if (local) this.wake();
  }

  private async insert(db: pg.Pool | pg.ClientBase, tuples: string[], values: unknown[], notify: boolean): Promise<void> {
    if (!notify) {
      await db.query(`INSERT INTO ${this.table} (${COLUMNS}) VALUES ${tuples.join(', ')}`, values);
      return;
    }
    // The NOTIFY rides on the INSERT (one round trip); it is delivered at commit and dropped on
    // rollback, like the rows themselves.
    const n = values.length;
    await db.query(
      `WITH ins AS (INSERT INTO ${this.table} (${COLUMNS}) VALUES ${tuples.join(', ')} RETURNING 1)
       SELECT pg_notify($${n + 1}, '') FROM (SELECT 1 FROM ins LIMIT 1) AS one`,
      [...values, this.channel],
    );
  }

  insertSql(messages: OutboxMessage | readonly OutboxMessage[], firstParam: number): { sql: string; values: unknown[] } {
    // Typed placeholders: in a VALUES list that is not the INSERT's own, PostgreSQL cannot infer them.
    const { tuples, values } = this.rows(messages, firstParam, '::text');
    if (tuples.length === 0) throw new TypeError('insertSql needs at least one message');
    return { sql: `INSERT INTO ${this.table} (${COLUMNS}) SELECT * FROM (VALUES ${tuples.join(', ')}) AS v (${COLUMNS})`, values };
  }

  /** Validates the messages and lays them out as VALUES tuples. Throws VALIDATION_FAILED. */
  private rows(messages: OutboxMessage | readonly OutboxMessage[], firstParam: number, cast: string): { tuples: string[]; values: unknown[] } {
    const list = (Array.isArray(messages) ? messages : [messages]) as readonly OutboxMessage[];
    const trace = outgoingTrace();
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const m of list) {
      const exchange = m.exchange ?? Exchanges.events;
      if (exchange === Exchanges.events) {
        const name = eventNameOf(m.routingKey);
        if (!name) throw validationFailed([{ path: 'routingKey', message: `${m.routingKey} is not an event of the catalogue` }]);
        const checked = events[name].payload.safeParse(m.payload);
        if (!checked.success) throw validationFailed(fieldErrors(checked.error));
      }
      const n = values.length + firstParam;
      tuples.push(`($${n}${cast}, $${n + 1}${cast}, $${n + 2}${cast}, $${n + 3}${cast}, $${n + 4}::jsonb, $${n + 5}${cast}, $${n + 6}${cast})`);
      values.push(
        exchange,
        m.routingKey,
        m.messageId ?? randomUUID(),
        JSON.stringify(m.payload),
        JSON.stringify(m.headers ?? {}),
        trace.correlationId,
        trace.traceparent,
      );
    }
    return { tuples, values };
  }

  start(): Promise<void> {
    this.startCall ??= (async () => {
      this.running = true;
      await this.listen();
      this.timer = setInterval(() => {
        if (!this.listener) void this.listen();
        this.wake();
      }, this.pollIntervalMs);
      this.wake();
    })();
    return this.startCall;
  }

  stop(): Promise<void> {
    this.stopCall ??= (async () => {
      this.running = false;
      clearInterval(this.timer);
      await this.chain.catch(() => undefined);
      const l = this.listener;
      this.listener = undefined;
      if (l) {
        await l.query(`UNLISTEN "${this.channel}"`).catch(() => undefined);
        l.release();
      }
    })();
    return this.stopCall;
  }

  flush(): Promise<number> {
    return this.exclusive(async () => {
      let total = 0;
      for (;;) {
        const n = await this.pass();
        total += n;
        if (n < this.batchSize) return total;
      }
    });
  }

  private async listen(): Promise<void> {
    try {
      const client = await this.o.pool.connect();
      client.on('notification', () => this.wake());
      client.on('error', (err) => {
        // The poll timer re-listens; until then the poll fallback relays.
        this.o.logger.warn({ err }, 'outbox listener lost');
        if (this.listener === client) this.listener = undefined;
        client.release(err);
      });
      await client.query(`LISTEN "${this.channel}"`);
      if (!this.running) {
        client.release();
        return;
      }
      this.listener = client;
    } catch (err) {
      this.o.logger.warn({ err }, 'outbox could not LISTEN; polling');
    }
  }

  watch(messageIds: readonly string[]): PublishWatch {
    const w = new Watch(
      messageIds,
      () => this.drain(),
      (id, watch) => {
        const set = this.watchers.get(id);
        set?.delete(watch);
        if (set?.size === 0) this.watchers.delete(id);
      },
    );
    for (const id of w.remaining) {
      let set = this.watchers.get(id);
      if (!set) this.watchers.set(id, (set = new Set()));
      set.add(w);
    }
    return w;
  }

  wake(): void {
    if (!this.running) return;
    this.drain().catch((err: unknown) => this.o.logger.warn({ err }, 'outbox relay pass failed; will retry'));
  }

  /**
   * Passes until a batch comes back short. Coalesced (group commit): a caller arriving while a drain
   * is queued but not started joins it; otherwise a new one is queued behind the one in flight. So
   * the first pass of the drain a caller gets always starts after its call, and sees every row
   * committed before it, however many requests, NOTIFYs and polls asked at once.
   */
  private drain(): Promise<void> {
    this.queuedDrain ??= this.exclusive(async () => {
      this.queuedDrain = undefined;
      while ((await this.pass()) === this.batchSize && !this.stopCall) {
        /* a full batch: more may be waiting */
      }
    });
    return this.queuedDrain;
  }

  /** One pass at a time per relay; other relays run concurrently and SKIP LOCKED keeps them apart. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(fn);
    this.chain = next;
    return next;
  }

  // One round trip claims the batch (locks held until COMMIT, released by the connection dropping
  // if the process dies first), then the publishes, then one round trip deletes what was published
  // and commits: two round trips per pass beside the confirms. The batch size and the ids are
  // integers we own, so those statements need no parameters and go with BEGIN/COMMIT in one query.
  // Rows are claimed in id order and published in that order on one channel; rows that failed
  // before are published one at a time, so that a message the broker refuses is known for sure
  // and harms no neighbour.
  private async pass(): Promise<number> {
    const client = await this.o.pool.connect();
    let ok = false;
    try {
      const results = (await client.query(
        `BEGIN; SELECT id, exchange, routing_key, message_id, payload, headers, correlation_id, traceparent, attempts
           FROM ${this.table} WHERE failed_at IS NULL ORDER BY id LIMIT ${this.batchSize} FOR UPDATE SKIP LOCKED`,
      )) as unknown as Array<pg.QueryResult<Row>>;
      const rows = results[1]!.rows;
      const outcomes = rows.some((r) => r.attempts > 0) ? await this.oneByOne(rows) : await Promise.allSettled(rows.map((r) => this.publishRow(r)));
      const sent = rows.filter((_, i) => outcomes[i]!.status === 'fulfilled');
      const failures = rows.flatMap((r, i) => {
        const o = outcomes[i]!;
        return o.status === 'rejected' ? [{ row: r, err: o.reason as unknown }] : [];
      });
      const del = sent.length ? `DELETE FROM ${this.table} WHERE id IN (${sent.map((r) => r.id).join(', ')}); ` : '';
      if (failures.length === 0) {
        await client.query(`${del}COMMIT`);
      } else {
        if (del) await client.query(del);
        await this.recordFailures(client, failures);
        await client.query('COMMIT');
      }
      ok = true;
      if (sent.length) {
        this.published.inc({ outcome: 'published' }, sent.length);
        for (const r of sent) for (const w of this.watchers.get(r.message_id) ?? []) w.published(r.message_id);
      }
      // A broker that is down (not one that refused a message) fails the pass, as before: the
      // rows stay, callers waiting on a watch hear UNAVAILABLE.
      const down = failures.find((f) => !counts(f.err));
      if (down) throw down.err;
      return sent.length;
    } catch (err) {
      if (!ok) await client.query('ROLLBACK').catch(() => undefined);
      this.published.inc({ outcome: 'failed' });
      throw err;
    } finally {
      // A client that failed mid-transaction is destroyed rather than handed to the next user.
      client.release(!ok);
    }
  }

  private publishRow(r: Row): Promise<void> {
    return this.o.broker.publish(r.exchange, r.routing_key, Buffer.from(r.payload), {
      messageId: r.message_id,
      contentType: 'application/json',
      persistent: true,
      ...(r.correlation_id ? { correlationId: r.correlation_id } : {}),
      timestamp: Math.floor(Date.now() / 1000),
      headers: {
        ...r.headers,
        ...(r.correlation_id ? { [CORRELATION_HEADER]: r.correlation_id } : {}),
        ...(r.traceparent ? { [Headers.traceparent]: r.traceparent } : {}),
      },
    });
  }

  private async oneByOne(rows: Row[]): Promise<Array<PromiseSettledResult<void>>> {
    const out: Array<PromiseSettledResult<void>> = [];
    for (const r of rows) {
      try {
        await this.publishRow(r);
        out.push({ status: 'fulfilled', value: undefined });
      } catch (reason) {
        out.push({ status: 'rejected', reason });
      }
    }
    return out;
  }

  /**
   * Counts the refusals against their rows and sets aside those refused `maxAttempts` times (or
   * invalid, which no retry cures). A broker that is merely down counts against nobody.
   */
  private async recordFailures(client: pg.PoolClient, failures: Array<{ row: Row; err: unknown }>): Promise<void> {
    const counted = failures.filter((f) => counts(f.err));
    if (counted.length === 0) return;
    const { rows } = await client.query<{ id: string; set_aside: boolean; attempts: number }>(
      `UPDATE ${this.table} AS t
          SET attempts = t.attempts + 1,
              last_error = f.err,
              failed_at = CASE WHEN f.now OR (f.own AND t.attempts + 1 >= $5) THEN now() END
         FROM unnest($1::bigint[], $2::boolean[], $3::text[], $4::boolean[]) AS f(id, now, err, own)
        WHERE t.id = f.id
        RETURNING t.id, t.failed_at IS NOT NULL AS set_aside, t.attempts`,
      [
        counted.map((f) => f.row.id),
        counted.map((f) => isFleetError(f.err, ErrorCode.VALIDATION_FAILED)),
        counted.map((f) => errorText(f.err)),
        // Only a row refused for itself is set aside, never one that shared a channel with it.
        counted.map((f) => !(f.err instanceof FleetError && f.err.retryable)),
        this.maxAttempts,
      ],
    );
    const byId = new Map(counted.map((f) => [f.row.id, f]));
    for (const r of rows) {
      const f = byId.get(String(r.id))!;
      const what = { messageId: f.row.message_id, exchange: f.row.exchange, routingKey: f.row.routing_key, attempts: r.attempts, error: errorText(f.err) };
      // A neighbour of the refused message (retryable) is only marked, to be published alone next time.
      if (f.err instanceof FleetError && f.err.retryable) continue;
      this.published.inc({ outcome: 'refused' });
      if (r.set_aside) {
        this.published.inc({ outcome: 'set_aside' });
        this.o.logger.error(what, 'outbox row set aside: the broker keeps refusing it (failed_at set; see docs/operations.md)');
      } else {
        this.o.logger.warn(what, 'outbox row refused by the broker; it will be tried again, alone');
      }
    }
  }
}

/** Whether a failed publish counts against its row: the broker refused it (or one beside it), or it is invalid. */
function counts(err: unknown): boolean {
  if (!(err instanceof FleetError)) return false;
  return !err.retryable || err.details?.brokerRefusal !== undefined;
}

function errorText(err: unknown): string {
  const text = err instanceof FleetError ? `${err.code}: ${err.message}` : String(err);
  return text.length > LAST_ERROR_MAX ? `${text.slice(0, LAST_ERROR_MAX - 1)}…` : text;
}

class Watch implements PublishWatch {
  readonly remaining: Set<string>;
  private done: (() => void) | undefined;
  private closed = false;

  constructor(
    ids: readonly string[],
    private readonly drain: () => Promise<void>,
    private readonly forget: (id: string, w: Watch) => void,
  ) {
    this.remaining = new Set(ids);
  }

  published(id: string): void {
    if (!this.remaining.delete(id)) return;
    this.forget(id, this);
    if (this.remaining.size === 0) this.done?.();
  }

  settled(): Promise<boolean> {
    if (this.remaining.size === 0) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    // Resolved by whichever pass publishes the last id (possibly one already in flight), else
    // decided when the drain asked for here ends.
    const all = new Promise<boolean>((resolve) => {
      this.done = () => resolve(true);
    });
    const drained = this.drain().then(() => this.remaining.size === 0);
    return Promise.race([all, drained]);
  }

  close(): void {
    this.closed = true;
    this.done = undefined;
    for (const id of this.remaining) this.forget(id, this);
  }
}
