import { randomUUID } from 'node:crypto';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Logger } from '@wallet-fleet/service-kit';
import type { ConfirmChannel, Message } from 'amqplib';
import { unavailable } from './errors.js';
import type { Metrics } from './metrics.js';
import { checkPublish } from './publish-props.js';

/** AMQP properties of a raw publish. */
export interface PublishProps {
  messageId?: string;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in ms: a whole number (checked before publishing). */
  expiration?: string | number;
  headers?: Record<string, unknown>;
  contentType?: string;
  /** Default true (delivery mode 2). */
  persistent?: boolean;
  /** Fail with UNROUTABLE when no queue is bound (needs a unique messageId; one is generated if absent). */
  mandatory?: boolean;
  type?: string;
  timestamp?: number;
  appId?: string;
}

export interface PublisherOptions {
  /** Opens a confirm channel on the session's connection (rejects once the connection is gone). */
  open(): Promise<ConfirmChannel>;
  /** Unconfirmed publishes at most. */
  window: number;
  /** A publish (waiting for a slot, then for its confirm) fails UNAVAILABLE after this long. */
  confirmTimeoutMs: number;
  metrics: Metrics;
  /** The connection's broker user, set as `user_id` on every message (RabbitMQ refuses any other). */
  userId: string;
  logger: Logger;
  /** Runs on each new channel before anything is published on it (the direct reply-to consumer). */
  onOpen?(ch: ConfirmChannel): Promise<void>;
  /** A channel closed while the publisher lives (every message unconfirmed on it has failed). */
  onChannelClosed?(err: Error): void;
  /** No channel could be opened: the connection is gone, the session has to be replaced. */
  onDead(err: Error): void;
}

/** What the broker said when it closed a channel because of a message. */
interface Refusal {
  code: number;
  text: string;
  /** The exchange the text names (`no exchange 'x'`, `write access to exchange 'x'`), if any. */
  exchange: string | undefined;
  /** Messages unconfirmed on the channel when it closed: with one, the culprit is known. */
  unconfirmed: number;
}

/** One confirm channel and what belongs to it. */
interface Slot {
  ch: ConfirmChannel;
  unconfirmed: number;
  refusal: Refusal | undefined;
  /** Ids of mandatory messages the broker returned (basic.return comes before their ack). */
  returned: Set<string>;
}

interface Waiter {
  go: () => void;
  fail: (e: Error) => void;
  cancelled: boolean;
}

/**
 * Publishes on one confirm channel with at most `window` messages unconfirmed. A publish waits
 * while the window is full (memory stays bounded when the broker is slow or blocked) and resolves
 * only on the broker's ack; it rejects UNAVAILABLE on nack, when the channel dies first, or when
 * no confirm came within `confirmTimeoutMs`, so nothing unconfirmed is ever reported as sent.
 *
 * A message the broker refuses (no such exchange 404, no write access 403, a property it will not
 * take 406) makes it close the channel. Only this channel is reopened (the connection, the
 * consumers and their unacked messages stay); the refused message fails for good (NOT_FOUND,
 * FORBIDDEN, INTERNAL; not retryable) when it can be told apart, the others unconfirmed on that
 * channel fail UNAVAILABLE with `details.brokerRefusal`, so a caller can retry them one at a time.
 */
export class Publisher {
  private slot: Slot | undefined;
  private inFlight = 0;
  private readonly waiters: Waiter[] = [];
  private readonly pending = new Set<(e: Error) => void>();
  private readonly idle: Array<() => void> = [];
  private dead: Error | undefined;
  /** Channels that closed, also those that did so before they were ready. */
  private readonly slotClosed = new WeakSet<Slot>();

  private constructor(private readonly o: PublisherOptions) {}

  /** Opens the first channel. Throws what opening it threw. */
  static async open(o: PublisherOptions): Promise<Publisher> {
    const p = new Publisher(o);
    await p.openChannel(true);
    return p;
  }

  get unconfirmed(): number {
    return this.inFlight;
  }

  /**
   * Throws VALIDATION_FAILED (a property the broker would refuse; nothing sent), UNAVAILABLE
   * (channel gone, nack, no confirm in time), UNROUTABLE (mandatory and nothing bound), NOT_FOUND
   * / FORBIDDEN / INTERNAL (the broker refused this message: no such exchange, no access, other).
   */
  async publish(exchange: string, routingKey: string, body: Buffer, props: PublishProps = {}, metricKey = routingKey): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waiter: { w?: Waiter } = {};
    try {
      checkPublish(exchange, routingKey, props);
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          if (waiter.w) waiter.w.cancelled = true;
          reject(unavailable(`no broker confirm within ${this.o.confirmTimeoutMs} ms (broker blocked or slow)`));
        }, this.o.confirmTimeoutMs);
      });
      const sent = (async () => {
        // A slot granted just as the channel closed is given back until the next channel is open.
        for (;;) {
          await this.acquire(waiter);
          if (this.slot) return this.send(exchange, routingKey, body, props);
          this.release();
        }
      })();
      // Past the timeout the message may still be confirmed or fail: nobody listens any more.
      sent.catch(() => undefined);
      await Promise.race([sent, timeout]);
      this.o.metrics.published.inc({ routing_key: metricKey, outcome: 'confirmed' });
    } catch (e) {
      this.o.metrics.published.inc({ routing_key: metricKey, outcome: outcomeOf(e) });
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Fails every waiting and unconfirmed publish with `err` and opens no more channels (session lost). */
  failAll(err: Error): void {
    this.dead ??= err;
    for (const fail of [...this.pending]) fail(err);
    for (const w of this.waiters.splice(0)) w.fail(err);
  }

  /** Resolves when no publish is unconfirmed (or after `timeoutMs`). */
  drain(timeoutMs: number): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idle.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private send(exchange: string, routingKey: string, body: Buffer, props: PublishProps): Promise<void> {
    const slot = this.slot!;
    const { mandatory, persistent, ...rest } = props;
    const messageId = mandatory && !rest.messageId ? randomUUID() : rest.messageId;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let released = false;
      const free = () => {
        if (released) return;
        released = true;
        slot.unconfirmed--;
        this.release();
      };
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        this.pending.delete(fail);
        reject(e);
      };
      this.pending.add(fail);
      slot.unconfirmed++;
      try {
        slot.ch.publish(
          exchange,
          routingKey,
          body,
          { ...rest, ...(messageId ? { messageId } : {}), userId: this.o.userId, persistent: persistent ?? true, mandatory: mandatory ?? false },
          (err) => {
            free();
            if (settled) return;
            if (err) return fail(slot.refusal ? refusedError(slot.refusal, exchange, routingKey) : unavailable('broker did not confirm the publish', err));
            if (mandatory && messageId && slot.returned.delete(messageId)) {
              return fail(new FleetError(ErrorCode.UNROUTABLE, `no queue bound for ${exchange}/${routingKey}`));
            }
            settled = true;
            this.pending.delete(fail);
            resolve();
          },
        );
      } catch (e) {
        // amqplib throws synchronously on a closed channel (IllegalOperationError) and on a value it
        // cannot encode; the callback never runs then.
        free();
        fail(unavailable('channel closed', e));
      }
    });
  }

  private async openChannel(first: boolean): Promise<void> {
    try {
      const ch = await this.o.open();
      const s: Slot = { ch, unconfirmed: 0, refusal: undefined, returned: new Set() };
      // RabbitMQ sends basic.return before the basic.ack of the same mandatory message, and amqplib
      // emits frames in order, so the id is in `returned` when the confirm callback runs.
      ch.on('return', (msg: Message) => {
        const id = msg.properties.messageId;
        if (typeof id === 'string') s.returned.add(id);
      });
      // amqplib emits 'error' (with the broker's reply code) before it fails the unconfirmed
      // callbacks and emits 'close', so each callback can tell a refusal from a lost line.
      ch.on('error', (err: Error & { code?: number }) => {
        const text = err.message.replace(/^Channel closed by server: /, '');
        if (typeof err.code === 'number') {
          s.refusal = { code: err.code, text, exchange: /exchange '([^']*)'/.exec(text)?.[1], unconfirmed: s.unconfirmed };
        }
        this.o.logger.warn({ code: err.code, error: text, unconfirmed: s.unconfirmed }, 'broker closed the publisher channel');
      });
      ch.on('close', () => this.channelClosed(s));
      await this.o.onOpen?.(ch);
      if (this.dead || this.slotClosed.has(s)) {
        await ch.close().catch(() => undefined);
        throw this.dead ?? unavailable('publisher channel closed while opening');
      }
      this.slot = s;
      this.pump();
    } catch (e) {
      const err = unavailable('publisher channel could not be opened', e);
      if (first) throw e;
      this.failAll(err);
      this.o.onDead(err);
    }
  }

  private channelClosed(s: Slot): void {
    this.slotClosed.add(s);
    if (this.slot !== s) return;
    this.slot = undefined;
    const err = unavailable(s.refusal ? `publisher channel closed by the broker: ${s.refusal.text}` : 'publisher channel closed');
    this.o.onChannelClosed?.(err);
    if (this.dead) return;
    void this.openChannel(false);
  }

  // A slot is taken synchronously when granted (also when handed to a waiter), so a caller that
  // arrives between the hand-over and the waiter's resumption cannot overfill the window.
  private acquire(holder: { w?: Waiter }): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.slot && this.inFlight < this.o.window && this.waiters.length === 0) {
      this.take();
      return Promise.resolve();
    }
    return new Promise((go, fail) => {
      holder.w = { go, fail, cancelled: false };
      this.waiters.push(holder.w);
    });
  }

  /** Hands free slots to waiters while a channel is open; a waiter whose caller gave up is skipped. */
  private pump(): void {
    while (this.slot && this.inFlight < this.o.window && this.waiters.length > 0) {
      const w = this.waiters.shift()!;
      if (w.cancelled) continue;
      this.take();
      w.go();
    }
  }

  private take(): void {
    this.inFlight++;
    this.o.metrics.unconfirmed.inc();
  }

  private release(): void {
    this.inFlight--;
    this.o.metrics.unconfirmed.dec();
    this.pump();
    if (this.inFlight === 0) for (const done of this.idle.splice(0)) done();
  }
}

/**
 * The error of a message on a channel the broker closed. It is this message's own fault when the
 * broker named its exchange or when it was the only one unconfirmed there; otherwise it shared the
 * channel with the culprit and may be retried (alone, to find out).
 */
function refusedError(r: Refusal, exchange: string, routingKey: string): FleetError {
  const details = { brokerRefusal: { code: r.code, text: r.text } };
  if (r.exchange === exchange || r.unconfirmed === 1) {
    const code = r.code === 404 ? ErrorCode.NOT_FOUND : r.code === 403 ? ErrorCode.FORBIDDEN : ErrorCode.INTERNAL;
    return new FleetError(code, `broker refused the publish to ${exchange || '(default)'}/${routingKey}: ${r.text}`, { retryable: false, details });
  }
  return new FleetError(ErrorCode.UNAVAILABLE, `publisher channel closed by the broker because of another message: ${r.text}`, { retryable: true, details });
}

function outcomeOf(e: unknown): string {
  if (!(e instanceof FleetError)) return 'unavailable';
  if (e.code === ErrorCode.UNROUTABLE) return 'unroutable';
  if (e.code === ErrorCode.VALIDATION_FAILED) return 'invalid';
  if (e.code === ErrorCode.UNAVAILABLE) return 'unavailable';
  return 'refused';
}
