import { randomUUID } from 'node:crypto';
import { Exchanges, Headers, eventNameOf, events, fieldErrors } from '@wallet-fleet/contracts';
import { type Logger } from '@wallet-fleet/service-kit';
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
  /** Starts the relay: LISTEN/NOTIFY wake-ups plus a poll fallback. Safe to call twice. */
  start(): Promise<void>;
  /** Stops the relay after the pass in flight. Safe to call twice. */
  stop(): Promise<void>;
  /** Relays until nothing is pending; returns how many messages this call published. */
  flush(): Promise<number>;
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
}

/**
 * DDL of `<schema>.outbox` (idempotent). Services put it into their own migrations:
 * `pgm.sql(outboxTableSql(schema))`. The payload is stored as text so that exactly the bytes
 * enqueued are published (jsonb would reorder keys).
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
);`;
}

interface Row {
  id: string;
  exchange: string;
  routing_key: string;
  message_id: string;
  payload: string;
  headers: Record<string, string>;
  correlation_id: string | null;
  traceparent: string | null;
}

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
  private readonly published: Counter<'outcome'>;
  private listener: pg.PoolClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private wakePending = false;
  private running = false;
  private startCall: Promise<void> | undefined;
  private stopCall: Promise<void> | undefined;

  constructor(private readonly o: OutboxOptions) {
    this.table = `${schemaIdent(o.schema)}.outbox`;
    this.channel = `outbox_${o.schema}`;
    this.batchSize = o.batchSize ?? 100;
    this.pollIntervalMs = o.pollIntervalMs ?? 1000;
    const registry = o.registry ?? new Registry();
    this.published =
      (registry.getSingleMetric('messaging_outbox_relayed_total') as Counter<'outcome'> | undefined) ??
      new Counter({ name: 'messaging_outbox_relayed_total', help: 'Outbox rows relayed, by outcome (published, failed)', labelNames: ['outcome'] as const, registers: [registry] });
  }

  async enqueue(client: pg.ClientBase, messages: OutboxMessage | readonly OutboxMessage[]): Promise<void> {
    const list = (Array.isArray(messages) ? messages : [messages]) as readonly OutboxMessage[];
    if (list.length === 0) return;
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
      const n = values.length;
      tuples.push(`($${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}::jsonb, $${n + 6}, $${n + 7})`);
      values.push(exchange, m.routingKey, m.messageId ?? randomUUID(), JSON.stringify(m.payload), JSON.stringify(m.headers ?? {}), trace.correlationId, trace.traceparent);
    }
    await client.query(
      `INSERT INTO ${this.table} (exchange, routing_key, message_id, payload, headers, correlation_id, traceparent) VALUES ${tuples.join(', ')}`,
      values,
    );
    // Delivered at commit and dropped on rollback, like the rows themselves.
    await client.query('SELECT pg_notify($1, $2)', [this.channel, '']);
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

  private wake(): void {
    if (!this.running || this.wakePending) return;
    this.wakePending = true;
    void this.exclusive(async () => {
      this.wakePending = false;
      while (this.running && (await this.pass()) === this.batchSize) {
        /* a full batch: more may be waiting */
      }
    }).catch((err: unknown) => this.o.logger.warn({ err }, 'outbox relay pass failed; will retry'));
  }

  /** One pass at a time per relay; other relays run concurrently and SKIP LOCKED keeps them apart. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.catch(() => undefined).then(fn);
    this.chain = next;
    return next;
  }

  private async pass(): Promise<number> {
    const client = await this.o.pool.connect();
    let ok = false;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<Row>(
        `SELECT id, exchange, routing_key, message_id, payload, headers, correlation_id, traceparent
           FROM ${this.table} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [this.batchSize],
      );
      if (rows.length > 0) {
        // Issued in id order on one channel, so they reach the broker in that order.
        await Promise.all(
          rows.map((r) =>
            this.o.broker.publish(r.exchange, r.routing_key, Buffer.from(r.payload), {
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
            }),
          ),
        );
        await client.query(`DELETE FROM ${this.table} WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
      }
      await client.query('COMMIT');
      ok = true;
      if (rows.length) this.published.inc({ outcome: 'published' }, rows.length);
      return rows.length;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      this.published.inc({ outcome: 'failed' });
      throw err;
    } finally {
      // A client that failed mid-transaction is destroyed rather than handed to the next user.
      client.release(!ok);
    }
  }
}
