import { randomUUID } from 'node:crypto';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { ConfirmChannel, Message } from 'amqplib';
import { unavailable } from './errors.js';
import type { Metrics } from './metrics.js';

/** AMQP properties of a raw publish. */
export interface PublishProps {
  messageId?: string;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in ms. */
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

/**
 * Publishes on one confirm channel with at most `window` messages unconfirmed. A publish waits
 * while the window is full (memory stays bounded when the broker is slow or blocked) and resolves
 * only on the broker's ack; it rejects UNAVAILABLE on nack or when the channel dies first, so
 * nothing unconfirmed is ever reported as sent.
 */
export class Publisher {
  private inFlight = 0;
  private readonly waiters: Array<{ go: () => void; fail: (e: Error) => void }> = [];
  private readonly returned = new Set<string>();
  private readonly pending = new Set<(e: Error) => void>();
  private readonly idle: Array<() => void> = [];
  private dead: Error | undefined;

  constructor(
    private readonly ch: ConfirmChannel,
    private readonly window: number,
    private readonly metrics: Metrics,
    /** The connection's broker user, set as `user_id` on every message (RabbitMQ refuses any other). */
    private readonly userId: string,
  ) {
    // RabbitMQ sends basic.return before the basic.ack of the same mandatory message, and amqplib
    // emits frames in order, so the id is in `returned` when the confirm callback runs.
    ch.on('return', (msg: Message) => {
      const id = msg.properties.messageId;
      if (typeof id === 'string') this.returned.add(id);
    });
  }

  get unconfirmed(): number {
    return this.inFlight;
  }

  /** Throws UNAVAILABLE (channel gone, nack), UNROUTABLE (mandatory and nothing bound). */
  async publish(exchange: string, routingKey: string, body: Buffer, props: PublishProps = {}, metricKey = routingKey): Promise<void> {
    await this.acquire();
    const { mandatory, persistent, ...rest } = props;
    const messageId = mandatory && !rest.messageId ? randomUUID() : rest.messageId;
    try {
      await new Promise<void>((resolve, reject) => {
        let settled = false;
        const fail = (e: Error) => {
          if (settled) return;
          settled = true;
          this.pending.delete(fail);
          reject(e);
        };
        this.pending.add(fail);
        try {
          this.ch.publish(
            exchange,
            routingKey,
            body,
            { ...rest, ...(messageId ? { messageId } : {}), userId: this.userId, persistent: persistent ?? true, mandatory: mandatory ?? false },
            (err) => {
              if (settled) return;
              if (err) return fail(unavailable('broker did not confirm the publish', err));
              if (mandatory && messageId && this.returned.delete(messageId)) {
                return fail(new FleetError(ErrorCode.UNROUTABLE, `no queue bound for ${exchange}/${routingKey}`));
              }
              settled = true;
              this.pending.delete(fail);
              resolve();
            },
          );
        } catch (e) {
          // amqplib throws synchronously on a closed channel (IllegalOperationError).
          fail(unavailable('channel closed', e));
        }
      });
      this.metrics.published.inc({ routing_key: metricKey, outcome: 'confirmed' });
    } catch (e) {
      const outcome = e instanceof FleetError && e.code === ErrorCode.UNROUTABLE ? 'unroutable' : 'unavailable';
      this.metrics.published.inc({ routing_key: metricKey, outcome });
      throw e;
    } finally {
      this.release();
    }
  }

  /** Fails every waiting and unconfirmed publish with `err` (channel or connection lost). */
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

  // A slot is taken synchronously when granted (also when handed to a waiter), so a caller that
  // arrives between the hand-over and the waiter's resumption cannot overfill the window.
  private acquire(): Promise<void> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.inFlight < this.window && this.waiters.length === 0) {
      this.take();
      return Promise.resolve();
    }
    return new Promise((go, fail) =>
      this.waiters.push({
        go: () => {
          this.take();
          go();
        },
        fail,
      }),
    );
  }

  private take(): void {
    this.inFlight++;
    this.metrics.unconfirmed.inc();
  }

  private release(): void {
    this.inFlight--;
    this.metrics.unconfirmed.dec();
    if (this.inFlight < this.window) this.waiters.shift()?.go();
    if (this.inFlight === 0) for (const done of this.idle.splice(0)) done();
  }
}
