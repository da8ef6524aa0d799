import type { EventName, OperationName, ParsedPayloadOf, ParsedRequestOf, PayloadOf, RequestOf, ResultOf } from '@wallet-fleet/contracts';
import type { Logger } from '@wallet-fleet/service-kit';
import type { Registry } from 'prom-client';
import type { BrokerAccess, Caller } from './authorize.js';
import type { PublishProps } from './publisher.js';
import type { Topology } from './topology.js';

/** What a handler learns about the message besides its validated body. */
export interface HandlerContext {
  routingKey: string;
  messageId?: string;
  correlationId?: string;
  /** This handler's span (a child of the incoming traceparent). */
  traceparent: string;
  /**
   * Who sent the message: its `user_id` (RabbitMQ guarantees it is the publisher's broker user) and
   * the roles that user holds (BROKER_USER_ROLES), as the consumer authorized it. A request reaches
   * its handler as the caller sent it (RPC is never retried server-side); a retry copy of an event
   * carries the consuming service's own user.
   */
  caller: Caller;
  /** 1-based attempt (`x-attempt`). */
  attempt: number;
  headers: Record<string, unknown>;
  /** Epoch ms after which nobody waits for the outcome (`x-deadline`), when the sender of a request set one (never on events). */
  deadline?: number;
  /** Aborted at the deadline and when stop() gives up waiting: stop work, the message is requeued. */
  signal: AbortSignal;
  logger: Logger;
  /** Publishes an event carrying this message's correlation id and trace. */
  publishEvent: Broker['publishEvent'];
}

/**
 * Returns a result, or throws: a FleetError (anything else counts as INTERNAL, not retryable), or a
 * Deferral (`defer(err, { delayMs })`) to have the message back later without using an attempt.
 */
export type Handler<I, O> = (input: I, ctx: HandlerContext) => Promise<O>;
export type CommandHandlers = { [Op in OperationName]?: Handler<ParsedRequestOf<Op>, ResultOf<Op>> };
export type EventHandlers = { [E in EventName]?: Handler<ParsedPayloadOf<E>, void> };
/** One outcome per item, same order: `undefined` = done, an Error = that item fails (retry/DLQ). */
export type BatchHandler<E extends EventName> = (
  items: ReadonlyArray<{ input: ParsedPayloadOf<E>; ctx: HandlerContext }>,
) => Promise<ReadonlyArray<Error | undefined>>;

export interface BrokerOptions {
  /**
   * The broker's AMQP URL, or the URLs of a cluster's nodes separated by commas (same user in each):
   * the runtime connects to one and, on a failed attempt or a lost connection, goes on to the next,
   * declaring the topology again there.
   */
  url: string;
  /** Name of the service (connection name, `app_id`). */
  service: string;
  topology: Topology;
  logger: Logger;
  registry?: Registry;
  /** Unconfirmed publishes at most (a publish waits while the window is full), default 256. */
  maxUnconfirmed?: number;
  /**
   * A publish (waiting for a window slot, then for the broker's confirm) fails UNAVAILABLE after
   * this long, default 15 s: a blocked or stalled broker must not hold callers (and the outbox's
   * open transaction) forever.
   */
  confirmTimeoutMs?: number;
  /** One connection attempt (TCP connect and AMQP handshake) fails after this long, default 10 s. */
  connectTimeoutMs?: number;
  /**
   * Reconnect backoff, jittered and capped; defaults 500 ms up to 30 s. It starts over only after a
   * session that lived 10 s: one dropped at once keeps backing off.
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  heartbeatSeconds?: number;
  /** Which roles a message's `user_id` holds; default `brokerAccessFromEnv(process.env)` (BROKER_USER_ROLES). */
  access?: BrokerAccess;
}

export interface Broker {
  /** Registers the operations served from an rpc queue of the topology. Before start(). */
  handleCommands(queue: string, handlers: CommandHandlers): void;
  /** Registers event handlers of an events queue of the topology. Before start(). */
  handleEvents(queue: string, handlers: EventHandlers): void;
  /** Consumes `event` from `queue` in batches of up to maxSize (default 100) within maxWaitMs (default 50). */
  handleEventBatch<E extends EventName>(queue: string, event: E, handler: BatchHandler<E>, opts?: { maxSize?: number; maxWaitMs?: number }): void;
  /**
   * Connects, asserts the topology, starts consuming. Retries connection failures with backoff;
   * rejects on permanent ones (bad credentials, unknown vhost, topology mismatch 406) and when
   * stop() is called first. A second call returns the first call's promise.
   */
  start(): Promise<void>;
  /**
   * Cancels consumers, waits up to `timeoutMs` (default 10 s) for running handlers, requeues what
   * is unfinished, waits for confirms, closes. A second call returns the first call's promise.
   */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  /**
   * Validates and publishes an event on `wallet.events`, resolving on the broker's confirm.
   * Throws VALIDATION_FAILED (unknown routing key or bad payload; nothing sent), UNAVAILABLE.
   */
  publishEvent<E extends EventName>(routingKey: string, payload: PayloadOf<E>, opts?: { messageId?: string; headers?: Record<string, string> }): Promise<void>;
  /**
   * Publishes raw bytes, resolving on the confirm. Throws VALIDATION_FAILED (a property the broker
   * would refuse, e.g. a fractional `expiration`; nothing sent), UNAVAILABLE (retryable: not
   * connected, no confirm in time, or the channel closed over another message), UNROUTABLE
   * (mandatory), and, not retryable, NOT_FOUND / FORBIDDEN / INTERNAL when the broker refused this
   * message (no such exchange, no write access, other; `details.brokerRefusal` has its words).
   */
  publish(exchange: string, routingKey: string, body: Buffer, props?: PublishProps): Promise<void>;
  /**
   * Calls an operation and waits for its reply. Throws VALIDATION_FAILED (body, or a `timeoutMs`
   * that is not a whole number of ms; nothing sent),
   * UNAVAILABLE, UNROUTABLE, TIMEOUT (default 10 s), or the FleetError the handler replied with.
   */
  request<Op extends OperationName>(op: Op, body: RequestOf<Op>, opts?: { timeoutMs?: number; headers?: Record<string, string> }): Promise<ResultOf<Op>>;
  /**
   * For readiness probes: connected, why the broker blocks our publishing (a memory or disk alarm;
   * absent when it does not), and per queue whether its consumer runs.
   */
  status(): { connected: boolean; blocked?: string; consumers: Record<string, boolean> };
}
