import { randomUUID } from 'node:crypto';
import {
  ErrorCode,
  FleetError,
  Headers,
  eventNameOf,
  events,
  fieldErrors,
  operations,
  type EventName,
  type FieldError,
  type OperationName,
} from '@wallet-fleet/contracts';
import { childTraceparent, runWithContext, type Logger, type WorkContext } from '@wallet-fleet/service-kit';
import type { ChannelModel, ConsumeMessage, MessageProperties } from 'amqplib';
import type { z } from 'zod';
import { Batcher } from './batcher.js';
import { ChannelHandle, Delivery } from './delivery.js';
import { Deferral, asFleetError, validationFailed } from './errors.js';
import { BROKER_DEATH_HEADERS, CORRELATION_HEADER, headerNumber, headerString } from './headers.js';
import { MAX_TIMER_MS } from './connection.js';
import type { Metrics } from './metrics.js';
import type { PublishProps, Publisher } from './publisher.js';
import { appendHistory, computeRetryDelay } from './retry.js';
import { DELAY_TIERS_MS, RETRY_EXCHANGE, delayKey, delayTier, dlqName, type ResolvedQueueSpec } from './topology.js';
import type { Authorization, Caller } from './authorize.js';
import type { BatchHandler, Broker, Handler, HandlerContext } from './types.js';

/** Why a message went to the DLQ (`x-death-reason`). */
export type DeathReason =
  | 'malformed_json'
  | 'validation'
  | 'no_handler'
  | 'non_retryable'
  | 'attempts_exhausted'
  | 'rpc_failed'
  | 'forbidden_producer'
  | 'forbidden_caller'
  | 'outcome_unknown';

interface BatchItem {
  d: Delivery;
  m: MessageMeta;
  input: unknown;
  ctx: HandlerContext;
  done: () => void;
}

type Entry =
  | { kind: 'single'; handler: Handler<unknown, unknown> }
  | { kind: 'batch'; handler: BatchHandler<EventName>; batcher: Batcher<BatchItem>; maxSize: number };

/** What the consumer needs from the broker around it. */
export interface ConsumerDeps {
  logger: Logger;
  metrics: Metrics;
  appId: string;
  /** The publisher of the live session, if any. */
  publisher(): Publisher | undefined;
  publishEvent: Broker['publishEvent'];
  /** Who sent it and whether they may (authorize.ts); also the routing key to believe. */
  authorize(msg: ConsumeMessage, kind: 'rpc' | 'events'): Authorization;
}

/** Facts of one delivery, read once. */
interface MessageMeta {
  routingKey: string;
  /** Catalogue key (operation or event name), the bounded metric label. */
  key: string;
  attempt: number;
  replyTo: string | undefined;
  headers: Record<string, unknown>;
  /** FORBIDDEN when the sender's role may not send this (authorize.ts). */
  refused: FleetError | undefined;
  caller: Caller;
}

const HEADER_TEXT_MAX = 1024;

/**
 * Consumes one queue: validation, context, handler, then ack / reply / retry / dead letter. A
 * handler never sees a channel; every way out of here settles the delivery exactly once, and a
 * message is acked only after whatever replaces it (retry copy, dead letter) is confirmed.
 */
export class QueueConsumer {
  private readonly entries = new Map<string, Entry>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly deliveries = new Set<Delivery>();
  private handle: ChannelHandle | undefined;
  private consumerTag: string | undefined;
  private consuming = false;

  constructor(
    readonly spec: ResolvedQueueSpec,
    private readonly deps: ConsumerDeps,
    /** The topology's delay tiers (ms, ascending). */
    private readonly tiers: readonly number[] = DELAY_TIERS_MS,
  ) {}

  get active(): boolean {
    return this.consuming && !!this.handle && !this.handle.closed;
  }

  get hasHandlers(): boolean {
    return this.entries.size > 0;
  }

  addHandler(key: string, handler: Handler<unknown, unknown>): void {
    this.claim(key);
    this.entries.set(key, { kind: 'single', handler });
  }

  addBatchHandler(event: EventName, handler: BatchHandler<EventName>, maxSize: number, maxWaitMs: number): void {
    this.claim(event);
    const batcher = new Batcher<BatchItem>(maxSize, maxWaitMs, (items) => this.runBatch(event, handler, items));
    this.entries.set(event, { kind: 'batch', handler, batcher, maxSize });
  }

  private claim(key: string): void {
    if (this.entries.has(key)) throw new Error(`a handler for ${key} on ${this.spec.name} is already registered`);
  }

  /** Opens a channel on `conn` and starts consuming; `onLost` is told when that channel dies. */
  async attach(conn: ChannelModel, onLost: (err: Error) => void): Promise<void> {
    const ch = await conn.createChannel();
    const handle = new ChannelHandle(ch);
    this.handle = handle;
    ch.on('error', (err: Error) => this.deps.logger.warn({ err, queue: this.spec.name }, 'consumer channel error'));
    ch.on('close', () => {
      if (this.handle === handle) {
        this.consuming = false;
        onLost(new Error(`consumer channel of ${this.spec.name} closed`));
      }
    });
    await ch.prefetch(this.prefetch());
    const { consumerTag } = await ch.consume(this.spec.name, (msg) => {
      // null = the broker cancelled us (queue deleted): a new session re-declares it.
      if (!msg) return onLost(new Error(`consumer of ${this.spec.name} cancelled by the broker`));
      this.track(new Delivery(handle, msg));
    });
    this.consumerTag = consumerTag;
    this.consuming = true;
  }

  /** The session died: nothing to do but forget the channel (the broker requeues unacked messages). */
  detach(): void {
    this.consuming = false;
    this.handle = undefined;
  }

  /** Stops new deliveries (stop() step 1); in-flight ones go on. */
  async cancel(): Promise<void> {
    const handle = this.handle;
    this.consuming = false;
    if (!handle || handle.closed || !this.consumerTag) return;
    try {
      await handle.ch.cancel(this.consumerTag);
    } catch {
      /* channel gone: nothing more will arrive anyway */
    }
    for (const e of this.entries.values()) if (e.kind === 'batch') e.batcher.flushNow();
  }

  /** Waits for in-flight deliveries until `deadline` (epoch ms); returns how many are left. */
  async waitIdle(deadline: number): Promise<number> {
    while (this.tasks.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.tasks]), new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
      clearTimeout(timer);
    }
    return this.tasks.size;
  }

  /** stop() past its deadline: abort what still runs and give its messages back to the queue. */
  requeueUnfinished(): number {
    let n = 0;
    for (const d of this.deliveries) {
      d.abort.abort(new FleetError(ErrorCode.UNAVAILABLE, 'consumer stopping'));
      if (d.nack(true)) {
        n++;
        this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: 'unknown', outcome: 'requeued' });
      }
    }
    return n;
  }

  /** Closes the consuming channel (stop() last step). */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.consuming = false;
    if (handle && !handle.closed) await handle.ch.close().catch(() => undefined);
  }

  private prefetch(): number {
    let p = this.spec.prefetch;
    // Twice the batch size: the next batch fills while the current one is being written.
    for (const e of this.entries.values()) if (e.kind === 'batch') p = Math.max(p, 2 * e.maxSize);
    return p;
  }

  private track(d: Delivery): void {
    this.deliveries.add(d);
    const task = this.process(d)
      .catch((err: unknown) => {
        // A bug of ours, not of the handler: requeue rather than lose (x-delivery-limit bounds loops).
        this.deps.logger.error({ err, queue: this.spec.name }, 'message processing failed; requeued');
        d.nack(true);
      })
      .finally(() => {
        this.deliveries.delete(d);
        this.tasks.delete(task);
      });
    this.tasks.add(task);
  }

  private meta(msg: ConsumeMessage): MessageMeta {
    const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
    // After a delay queue the message comes back through the default exchange with the queue's
    // name as routing key; the routing key it was published with travels in a header, believed
    // only on our own copies (authorize.ts).
    const { routingKey, refused, caller } = this.deps.authorize(msg, this.spec.kind);
    const key = this.spec.kind === 'rpc' ? (routingKey in operations ? routingKey : 'unknown') : (eventNameOf(routingKey) ?? 'unknown');
    const attempt = Math.max(1, Math.floor(headerNumber(headers[Headers.attempt]) ?? 1));
    const replyTo = this.spec.kind === 'rpc' && typeof msg.properties.replyTo === 'string' && msg.properties.replyTo ? msg.properties.replyTo : undefined;
    return { routingKey, key, attempt, replyTo, headers, refused, caller };
  }

  private async process(d: Delivery): Promise<void> {
    const { msg } = d;
    const m = this.meta(msg);
    const queue = this.spec.name;
    const work: WorkContext = {
      correlationId:
        headerString(m.headers[CORRELATION_HEADER]) ?? headerString(msg.properties.correlationId) ?? headerString(msg.properties.messageId) ?? randomUUID(),
      traceparent: childTraceparent(headerString(m.headers[Headers.traceparent])),
      queue,
      routingKey: m.routingKey,
      ...(typeof msg.properties.messageId === 'string' ? { messageId: msg.properties.messageId } : {}),
    };
    return runWithContext(work, async () => {
      // Requests carry no `expiration` (the broker would dead-letter them into the DLQ): a request
      // past the deadline its caller set is dropped here, unprocessed, and counted. It is a rule for
      // requests only: an event is a fact that must be kept, whatever a sender wrote into its headers.
      const deadline = this.spec.kind === 'rpc' ? headerNumber(m.headers[Headers.deadline]) : undefined;
      if (deadline !== undefined && deadline <= Date.now()) {
        d.ack();
        this.deps.metrics.consumed.inc({ queue, routing_key: m.key, outcome: 'expired' });
        this.deps.logger.info({ deadline }, 'request past its deadline dropped unprocessed');
        return;
      }

      if (m.refused) {
        this.deps.metrics.forbidden.inc({ queue, routing_key: m.key });
        return this.refuse(d, m, m.refused, this.spec.kind === 'rpc' ? 'forbidden_caller' : 'forbidden_producer');
      }

      const entry = this.entries.get(m.key);
      if (!entry) {
        const err = new FleetError(ErrorCode.UNKNOWN_OPERATION, `${queue} has no handler for ${m.routingKey}`);
        return this.refuse(d, m, err, 'no_handler');
      }

      let json: unknown;
      try {
        json = JSON.parse(msg.content.toString('utf8'));
      } catch (e) {
        const fields: FieldError[] = [{ path: '(root)', message: `malformed JSON: ${(e as Error).message}` }];
        return this.refuse(d, m, validationFailed(fields), 'malformed_json');
      }
      const schema: z.ZodType = this.spec.kind === 'rpc' ? operations[m.key as OperationName].request : events[m.key as EventName].payload;
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        return this.refuse(d, m, validationFailed(fieldErrors(parsed.error)), 'validation');
      }

      if (this.spec.kind === 'rpc' && msg.fields.redelivered && !rerunnable(m.key as OperationName, parsed.data)) {
        // Delivered before and never settled (a lost session, a stop's requeue): the first run may
        // have taken effect. Running it again could double that effect; the caller decides.
        this.deps.metrics.consumed.inc({ queue, routing_key: m.key, outcome: 'outcome_unknown' });
        const err = new FleetError(
          ErrorCode.OUTCOME_UNKNOWN,
          `${m.key} was delivered before and its outcome is unknown; it is not run again (not idempotent, no idempotencyKey)`,
        );
        this.deps.logger.warn({ operation: m.key }, 'redelivered request of an operation that is not idempotent answered OUTCOME_UNKNOWN');
        if (m.replyTo) return this.replyError(d, m, err);
        return this.deadLetter(d, m, err, 'outcome_unknown');
      }

      const ctx = this.context(d, m, work, deadline, entry.kind === 'batch');
      if (entry.kind === 'batch') {
        // The delivery stays tracked (stop() waits for it) until its batch settles it.
        await new Promise<void>((done) => entry.batcher.add({ d, m, input: parsed.data, ctx, done }));
        return;
      }
      // Node fires a timer longer than 2^31-1 ms (~24.8 days) at once: a deadline that far away is none.
      const timer =
        deadline === undefined || deadline - Date.now() > MAX_TIMER_MS
          ? undefined
          : setTimeout(() => d.abort.abort(new FleetError(ErrorCode.TIMEOUT, 'deadline passed')), deadline - Date.now());
      const started = process.hrtime.bigint();
      let result: unknown;
      try {
        result = await entry.handler(parsed.data, ctx);
      } catch (e) {
        this.observe(m, started, e instanceof Deferral ? 'deferred' : 'error');
        return this.failed(d, m, e);
      } finally {
        clearTimeout(timer);
      }
      this.observe(m, started, 'ok');
      await this.succeeded(d, m, result);
    });
  }

  private context(d: Delivery, m: MessageMeta, work: WorkContext, deadline: number | undefined, bindLogger: boolean): HandlerContext {
    const base = this.deps.logger;
    let logger: Logger | undefined;
    // `signal` and the per-item logger are built on first use: on a batch queue taking thousands
    // of messages a second, an AbortController and a pino child per message are most of the cost
    // of consuming, and few handlers look at either.
    return {
      routingKey: m.routingKey,
      ...(work.messageId ? { messageId: work.messageId } : {}),
      ...(work.correlationId ? { correlationId: work.correlationId } : {}),
      traceparent: work.traceparent!,
      caller: m.caller,
      attempt: m.attempt,
      headers: m.headers,
      ...(deadline === undefined ? {} : { deadline }),
      get signal() {
        return d.abort.signal;
      },
      // Batch handlers run outside any single message's work context, so their per-item logger
      // carries the ids itself; single handlers get them from the logger's context mixin.
      get logger() {
        logger ??= bindLogger ? base.child({ ...work }) : base;
        return logger;
      },
      publishEvent: (rk, payload, opts) => runWithContext(work, () => this.deps.publishEvent(rk, payload, opts)),
    };
  }

  private observe(m: MessageMeta, started: bigint, outcome: string): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.deps.metrics.handlerDuration.observe({ queue: this.spec.name, routing_key: m.key, outcome }, seconds);
  }

  private async succeeded(d: Delivery, m: MessageMeta, result: unknown): Promise<void> {
    if (this.spec.kind === 'rpc' && m.replyTo) {
      await this.reply(d, m, { ok: true, result: result ?? null });
    }
    if (d.ack()) this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: m.key, outcome: 'ack' });
  }

  /** A message that never reached a handler (unknown key, malformed JSON, schema violation). */
  private async refuse(d: Delivery, m: MessageMeta, err: FleetError, reason: DeathReason): Promise<void> {
    this.deps.logger.warn({ reason, code: err.code, fields: err.details?.fields }, 'message refused before its handler');
    if (this.spec.kind === 'rpc' && m.replyTo) return this.replyError(d, m, err);
    return this.deadLetter(d, m, err, reason);
  }

  private async failed(d: Delivery, m: MessageMeta, thrown: unknown): Promise<void> {
    if (thrown instanceof Deferral && this.spec.kind === 'events' && (this.spec.retry?.maxAttempts ?? 1) > 1) {
      return this.defer(d, m, thrown);
    }
    const err = thrown instanceof Deferral ? thrown.reason : asFleetError(thrown);
    const queue = this.spec.name;
    this.deps.metrics.failed.inc({ queue, routing_key: m.key, code: err.code });
    this.deps.logger.warn({ code: err.code, retryable: err.retryable, attempt: m.attempt, error: err.message }, 'handler failed');
    if (this.spec.kind === 'rpc') {
      // RPC never retries: the caller sees `retryable` and decides; a blind server-side retry
      // could double an effect the caller already gave up on.
      if (m.replyTo) return this.replyError(d, m, err);
      return this.deadLetter(d, m, err, 'rpc_failed');
    }
    const max = this.spec.retry?.maxAttempts ?? 1;
    if (!err.retryable) return this.deadLetter(d, m, err, 'non_retryable');
    if (m.attempt >= max) return this.deadLetter(d, m, err, 'attempts_exhausted');
    return this.retry(d, m, err);
  }

  private async replyError(d: Delivery, m: MessageMeta, err: FleetError): Promise<void> {
    // Text of an unexpected exception (SQL, stack-ish noise) stays in our logs, not in the reply.
    const body = err.code === ErrorCode.INTERNAL && !(err.cause === undefined) ? { ...err.toBody(), message: 'internal error' } : err.toBody();
    await this.reply(d, m, { ok: false, error: body });
    if (d.ack()) this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: m.key, outcome: 'reply_error' });
  }

  private async reply(d: Delivery, m: MessageMeta, body: unknown): Promise<void> {
    const publisher = this.deps.publisher();
    if (!d.live || !publisher || !m.replyTo) return;
    try {
      await publisher.publish(
        '',
        m.replyTo,
        Buffer.from(JSON.stringify(body)),
        {
          correlationId: d.msg.properties.correlationId,
          contentType: 'application/json',
          persistent: false,
          appId: this.deps.appId,
          headers: {
            ...(m.headers[CORRELATION_HEADER] !== undefined ? { [CORRELATION_HEADER]: m.headers[CORRELATION_HEADER] } : {}),
          },
        },
        'reply',
      );
    } catch (err) {
      // The effect happened; the request is still acked (redoing it is worse than a caller TIMEOUT).
      this.deps.logger.warn({ err }, 'reply could not be published; the caller will time out');
    }
  }

  private async retry(d: Delivery, m: MessageMeta, err: FleetError): Promise<void> {
    const policy = this.spec.retry!;
    const f = err.retryDelayFactor !== undefined && err.retryDelayFactor >= 1 && Number.isFinite(err.retryDelayFactor) ? err.retryDelayFactor : 1;
    const delay = computeRetryDelay(m.attempt, { ...policy, initialDelayMs: policy.initialDelayMs * f, maxDelayMs: policy.maxDelayMs * f });
    const tier = delayTier(delay, this.tiers);
    const headers = this.forwardHeaders(d, m, err);
    headers[Headers.attempt] = m.attempt + 1;
    const ok = await this.republish(d, delayKey(this.spec.name, tier), { ...copyProps(d.msg.properties), headers });
    if (!ok) return;
    if (d.ack()) {
      this.deps.metrics.retried.inc({ queue: this.spec.name, routing_key: m.key });
      this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: m.key, outcome: 'retry' });
      this.deps.logger.info({ attempt: m.attempt, delayMs: tier, code: err.code }, 'scheduled retry');
    }
  }

  /**
   * Like a retry, but the attempt number stays: what failed never reached the dependency. The error
   * history is kept as it is, not appended to: it holds at most MAX_HISTORY entries, and a long
   * outage would otherwise push out the failures that really used attempts.
   */
  private async defer(d: Delivery, m: MessageMeta, deferral: Deferral): Promise<void> {
    const err = deferral.reason;
    const delay = Math.max(0, Math.round(deferral.delayMs * (1 - deferral.jitter + 2 * deferral.jitter * Math.random())));
    // The same delay tiers as retries: the copy waits in the tier nearest to the delay asked for.
    const tier = delayTier(delay, this.tiers);
    const headers = this.routeHeaders(d, m);
    headers[Headers.attempt] = m.attempt;
    const ok = await this.republish(d, delayKey(this.spec.name, tier), { ...copyProps(d.msg.properties), headers });
    if (!ok) return;
    if (d.ack()) {
      this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: m.key, outcome: 'deferred' });
      this.deps.logger.info({ attempt: m.attempt, delayMs: tier, code: err.code }, 'deferred without using an attempt');
    }
  }

  private async deadLetter(d: Delivery, m: MessageMeta, err: FleetError, reason: DeathReason): Promise<void> {
    const headers = this.forwardHeaders(d, m, err);
    headers[Headers.deathReason] = reason;
    const ok = await this.republish(d, dlqName(this.spec.name), { ...copyProps(d.msg.properties), headers });
    if (!ok) return;
    if (d.ack()) {
      this.deps.metrics.deadLettered.inc({ queue: this.spec.name, routing_key: m.key, reason });
      this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: m.key, outcome: 'dead_letter' });
      this.deps.logger.warn({ reason, code: err.code }, 'message dead-lettered');
    }
  }

  private forwardHeaders(d: Delivery, m: MessageMeta, err: FleetError): Record<string, unknown> {
    const headers = this.routeHeaders(d, m);
    // The error message is cut to 256 characters; field errors get the header's larger budget.
    const fields = err.details?.fields as FieldError[] | undefined;
    const text = fields?.length ? `invalid ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}` : err.message;
    headers[Headers.errorCode] = err.code;
    headers[Headers.errorMessage] = text.length > HEADER_TEXT_MAX ? `${text.slice(0, HEADER_TEXT_MAX - 1)}…` : text;
    headers[Headers.errorHistory] = appendHistory(m.headers[Headers.errorHistory], {
      attempt: m.attempt,
      code: err.code,
      message: err.message,
      at: new Date().toISOString(),
    });
    return headers;
  }

  /** The message's own headers (its error history among them) and where it came from, minus the broker's death records. */
  private routeHeaders(d: Delivery, m: MessageMeta): Record<string, unknown> {
    const headers: Record<string, unknown> = { ...m.headers };
    for (const h of BROKER_DEATH_HEADERS) delete headers[h];
    headers[Headers.originalQueue] = this.spec.name;
    headers[Headers.originalRoutingKey] = m.routingKey;
    headers[Headers.originalExchange] = headerString(m.headers[Headers.originalExchange]) ?? d.msg.fields.exchange;
    return headers;
  }

  /**
   * Publishes the replacement copy with a confirm; false (and the original requeued) when that
   * fails, so the message exists at all times in at least one queue.
   */
  private async republish(d: Delivery, key: string, props: PublishProps): Promise<boolean> {
    const publisher = this.deps.publisher();
    // A delivery of a dead channel is already back in its queue: a copy now would be a duplicate.
    if (!d.live || !publisher) return false;
    try {
      // Mandatory: a copy to a queue that no longer exists would be confirmed and dropped, and the
      // original acked after it: lost. UNROUTABLE keeps the original instead.
      await publisher.publish(RETRY_EXCHANGE, key, d.msg.content, { ...props, mandatory: true }, key);
      return true;
    } catch (err) {
      this.deps.logger.warn({ err, target: key }, 'could not move the message; requeued');
      d.nack(true);
      return false;
    }
  }

  private async runBatch(event: EventName, handler: BatchHandler<EventName>, all: BatchItem[]): Promise<void> {
    // Items whose channel died while they waited are back in the queue already.
    const items = all.filter((i) => i.d.live);
    for (const i of all) if (!i.d.live) i.done();
    if (items.length === 0) return;
    const started = process.hrtime.bigint();
    let outcomes: ReadonlyArray<Error | undefined>;
    try {
      outcomes = await handler(items.map((i) => ({ input: i.input as never, ctx: i.ctx })));
      if (!Array.isArray(outcomes) || outcomes.length !== items.length) {
        throw new FleetError(ErrorCode.INTERNAL, `batch handler of ${event} returned ${outcomes?.length} outcomes for ${items.length} messages`);
      }
      this.observe({ key: event } as MessageMeta, started, 'ok');
    } catch (e) {
      this.observe({ key: event } as MessageMeta, started, 'error');
      outcomes = items.map(() => (e instanceof Error ? e : new Error(String(e))));
    }
    // The usual case, all stored: one `ack multiple` frame instead of one frame per message.
    if (
      outcomes.every((o) => o === undefined) &&
      Delivery.ackAll(
        items.map((i) => i.d),
        this.deliveries,
      )
    ) {
      this.deps.metrics.consumed.inc({ queue: this.spec.name, routing_key: event, outcome: 'ack' }, items.length);
      for (const i of items) i.done();
      return;
    }
    await Promise.all(
      items.map(async (item, n) => {
        try {
          const outcome = outcomes[n];
          await runWithContext(
            {
              correlationId: item.ctx.correlationId,
              traceparent: item.ctx.traceparent,
              queue: this.spec.name,
              routingKey: item.m.routingKey,
              ...(item.ctx.messageId ? { messageId: item.ctx.messageId } : {}),
            },
            () => (outcome === undefined ? this.succeeded(item.d, item.m, undefined) : this.failed(item.d, item.m, outcome)),
          );
        } finally {
          item.done();
        }
      }),
    );
  }
}

/**
 * Whether a redelivered request may run again: its operation is idempotent (catalogue), or the
 * request carries the idempotency key its handler dedupes on.
 */
function rerunnable(op: OperationName, request: unknown): boolean {
  if (operations[op].idempotent) return true;
  const key = (request as { idempotencyKey?: unknown } | null)?.idempotencyKey;
  return typeof key === 'string' && key.length > 0;
}

/** Properties kept on a retry copy or dead letter (expiration and reply_to are not). */
function copyProps(p: MessageProperties): PublishProps {
  const out: PublishProps = { persistent: true };
  if (p.contentType) out.contentType = p.contentType;
  if (p.messageId) out.messageId = p.messageId;
  if (p.correlationId) out.correlationId = p.correlationId;
  if (p.timestamp) out.timestamp = p.timestamp;
  if (p.type) out.type = p.type;
  if (p.appId) out.appId = p.appId;
  return out;
}
