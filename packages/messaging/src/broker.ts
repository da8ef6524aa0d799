import { randomUUID } from 'node:crypto';
import {
  DIRECT_REPLY_TO,
  Exchanges,
  Headers,
  eventNameOf,
  events,
  fieldErrors,
  operations,
  type EventName,
  type OperationName,
  type PayloadOf,
  type RequestOf,
  type ResultOf,
} from '@wallet-fleet/contracts';
import { safeUrl } from '@wallet-fleet/service-kit';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { authorizeDelivery, brokerAccessFromEnv, brokerUserOf, type BrokerAccess } from './authorize.js';
import { MAX_TIMER_MS, ReconnectBackoff, brokerUrls, openConnection, sleep } from './connection.js';
import { QueueConsumer } from './consumer.js';
import { isPermanentBrokerError, unavailable, validationFailed } from './errors.js';
import { CORRELATION_HEADER, outgoingTrace } from './headers.js';
import { createMetrics, type Metrics } from './metrics.js';
import { Publisher, type PublishProps } from './publisher.js';
import { RpcClient } from './rpc-client.js';
import { assertTopology, defineTopology, type ResolvedQueueSpec, type Topology } from './topology.js';
import type { BatchHandler, Broker, BrokerOptions, CommandHandlers, EventHandlers, Handler } from './types.js';

/** idle → starting → running → stopping → stopped; stop() from any state ends in stopped. */
type State = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

/**
 * Two connections and what lives on them; replaced whole after any loss. Publishing has its own
 * connection because RabbitMQ blocks a connection that publishes during a memory or disk alarm:
 * consumers on another connection go on taking and acking messages meanwhile.
 */
interface Session {
  /** Topology declarations and consumers. */
  conn: ChannelModel;
  /** The publisher channels. */
  pubConn?: ChannelModel;
  /** Why the broker blocks our publishing (resource alarm), while it does. */
  blocked?: string;
  publisher?: Publisher;
  /** Requests and their replies (direct reply-to). */
  rpcPublisher?: Publisher;
  ready: boolean;
  lost: boolean;
}

const DEFAULT_STOP_TIMEOUT_MS = 10_000;
const DEFAULT_CONFIRM_TIMEOUT_MS = 15_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** A session that lived this long was healthy: the next loss starts the reconnect backoff over. */
const SESSION_STABLE_MS = 10_000;

class MessageBroker implements Broker {
  private state: State = 'idle';
  private session: Session | undefined;
  private startCall: Promise<void> | undefined;
  private stopCall: Promise<void> | undefined;
  private reconnecting: Promise<void> | undefined;
  /** Aborted by stop(): cuts backoff sleeps short and ends the connect loops. */
  private readonly life = new AbortController();
  private readonly consumers = new Map<string, QueueConsumer>();
  private readonly rpc = new RpcClient();
  private readonly metrics: Metrics;
  private readonly topology: Topology;
  private readonly log: BrokerOptions['logger'];
  private readonly access: BrokerAccess;
  private readonly backoff: ReconnectBackoff;
  /** The cluster's nodes (AMQP_URL may list several); `node` is the one we use or try next. */
  private readonly urls: string[];
  /** The broker user every node of `urls` names (brokerUrls checks they agree): our `user_id`. */
  private readonly user: string;
  private node = 0;

  constructor(private readonly o: BrokerOptions) {
    this.urls = brokerUrls(o.url);
    this.user = brokerUserOf(this.urls[0]!);
    const { initialDelayMs = 500, maxDelayMs = 30_000 } = o.reconnect ?? {};
    this.backoff = new ReconnectBackoff({ initialDelayMs, maxDelayMs }, SESSION_STABLE_MS);
    // Read before anything connects: a malformed role map stops the service at start.
    this.access = o.access ?? brokerAccessFromEnv();
    this.topology = defineTopology(o.topology);
    this.metrics = createMetrics(o.registry);
    this.log = o.logger.child({ component: 'messaging' });
    this.metrics.connectionUp.set(0);
    for (const q of this.topology.queues) {
      this.consumers.set(
        q.name,
        new QueueConsumer(
          q as ResolvedQueueSpec,
          {
            logger: o.logger,
            metrics: this.metrics,
            appId: o.service,
            publisher: () => this.currentPublisher(),
            publishEvent: (rk, payload, opts) => this.publishEvent(rk, payload, opts),
            authorize: (msg, kind) => authorizeDelivery(msg, kind, { service: o.service, user: this.user }, this.access),
          },
          this.topology.delayTiers,
        ),
      );
    }
  }

  handleCommands(queue: string, handlers: CommandHandlers): void {
    const c = this.consumerFor(queue, 'rpc');
    for (const [op, h] of Object.entries(handlers)) {
      if (!(op in operations)) throw new Error(`${op} is not an operation of the catalogue`);
      if (h) c.addHandler(op, h as Handler<unknown, unknown>);
    }
  }

  handleEvents(queue: string, handlers: EventHandlers): void {
    const c = this.consumerFor(queue, 'events');
    for (const [ev, h] of Object.entries(handlers)) {
      if (!(ev in events)) throw new Error(`${ev} is not an event of the catalogue`);
      if (h) c.addHandler(ev, h as Handler<unknown, unknown>);
    }
  }

  handleEventBatch<E extends EventName>(queue: string, event: E, handler: BatchHandler<E>, opts: { maxSize?: number; maxWaitMs?: number } = {}): void {
    const c = this.consumerFor(queue, 'events');
    if (!(event in events)) throw new Error(`${event} is not an event of the catalogue`);
    const maxSize = opts.maxSize ?? 100;
    const maxWaitMs = opts.maxWaitMs ?? 50;
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > 5_000) throw new Error('maxSize must be an integer in 1..5000');
    if (!(maxWaitMs >= 0)) throw new Error('maxWaitMs must be >= 0');
    c.addBatchHandler(event, handler as unknown as BatchHandler<EventName>, maxSize, maxWaitMs);
  }

  private consumerFor(queue: string, kind: 'rpc' | 'events'): QueueConsumer {
    if (this.state !== 'idle') throw new Error('handlers are registered before start()');
    const c = this.consumers.get(queue);
    if (!c) throw new Error(`queue ${queue} is not in the topology`);
    if (c.spec.kind !== kind) throw new Error(`queue ${queue} is an ${c.spec.kind} queue, not ${kind}`);
    return c;
  }

  start(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped') return Promise.reject(new Error(`broker is ${this.state}; create a new one`));
    if (this.startCall) return this.startCall;
    if (this.state !== 'idle') return Promise.reject(new Error(`broker is ${this.state}; create a new one`));
    this.state = 'starting';
    this.startCall = this.connectLoop(true).then(
      () => {
        if (this.state === 'starting') this.state = 'running';
      },
      (err: unknown) => {
        if (this.state === 'starting') this.state = 'stopped';
        throw err;
      },
    );
    return this.startCall;
  }

  stop(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.stopCall ??= this.shutdown(opts.timeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
    return this.stopCall;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const was = this.state;
    this.state = 'stopping';
    this.life.abort();
    if (was === 'idle' || was === 'stopped') {
      this.state = 'stopped';
      return;
    }
    // A connect in flight is waited for only until the deadline: it ends by itself on the abort
    // (closing what it opened), and stop() must not hang behind a broker that does not answer.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([this.startCall, this.reconnecting]),
      new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
    const consumers = [...this.consumers.values()].filter((c) => c.hasHandlers);
    // Order matters: no new deliveries, then let running handlers finish (their replies, retries
    // and dead letters need the publisher), then requeue the rest, then wait for confirms.
    await Promise.all(consumers.map((c) => c.cancel()));
    const left = (await Promise.all(consumers.map((c) => c.waitIdle(deadline)))).reduce((a, b) => a + b, 0);
    if (left > 0) {
      const requeued = consumers.reduce((n, c) => n + c.requeueUnfinished(), 0);
      this.log.warn({ requeued }, 'stop deadline reached; unfinished messages requeued');
    }
    const s = this.session;
    await Promise.all([s?.publisher?.drain(Math.max(50, deadline - Date.now())), s?.rpcPublisher?.drain(Math.max(50, deadline - Date.now()))]);
    this.rpc.failAll(unavailable('broker stopped'));
    await Promise.all(consumers.map((c) => c.close()));
    if (s) {
      this.markLost(s, unavailable('broker stopped'));
      await closeSession(s);
    }
    this.metrics.connectionUp.set(0);
    this.state = 'stopped';
    this.log.info('broker stopped');
  }

  status(): { connected: boolean; blocked?: string; consumers: Record<string, boolean> } {
    const consumers: Record<string, boolean> = {};
    for (const [name, c] of this.consumers) if (c.hasHandlers) consumers[name] = c.active;
    const blocked = this.session?.blocked;
    return { connected: !!this.session?.ready, ...(blocked ? { blocked } : {}), consumers };
  }

  async publishEvent<E extends EventName>(
    routingKey: string,
    payload: PayloadOf<E>,
    opts: { messageId?: string; headers?: Record<string, string> } = {},
  ): Promise<void> {
    const name = eventNameOf(routingKey);
    if (!name) {
      throw validationFailed([{ path: 'routingKey', message: `${routingKey} is not an event of the catalogue` }]);
    }
    const checked = events[name].payload.safeParse(payload);
    if (!checked.success) throw validationFailed(fieldErrors(checked.error));
    const messageId = opts.messageId ?? randomUUID();
    const trace = outgoingTrace(messageId);
    await this.livePublisher().publish(
      Exchanges.events,
      routingKey,
      Buffer.from(JSON.stringify(payload)),
      {
        messageId,
        correlationId: trace.correlationId,
        contentType: 'application/json',
        persistent: true,
        timestamp: Math.floor(Date.now() / 1000),
        appId: this.o.service,
        type: routingKey,
        headers: { ...opts.headers, [CORRELATION_HEADER]: trace.correlationId, [Headers.traceparent]: trace.traceparent },
      },
      name,
    );
  }

  publish(exchange: string, routingKey: string, body: Buffer, props: PublishProps = {}): Promise<void> {
    try {
      return this.livePublisher().publish(
        exchange,
        routingKey,
        body,
        { appId: this.o.service, ...props },
        exchange === Exchanges.events ? (eventNameOf(routingKey) ?? 'other') : 'raw',
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  request<Op extends OperationName>(op: Op, body: RequestOf<Op>, opts?: { timeoutMs?: number; headers?: Record<string, string> }): Promise<ResultOf<Op>> {
    const t = opts?.timeoutMs;
    // It becomes a timer and the request's x-deadline: Node fires a timer longer than 2^31-1 ms at once.
    if (t !== undefined && !(Number.isInteger(t) && t >= 1 && t <= MAX_TIMER_MS)) {
      return Promise.reject(validationFailed([{ path: 'timeoutMs', message: `must be a whole number of milliseconds in 1..${MAX_TIMER_MS}` }]));
    }
    return this.rpc.request(() => this.livePublisher('rpc'), op, body, opts);
  }

  /** The session's publisher while the session lives (also while consumers attach and while stopping). */
  private currentPublisher(which: 'main' | 'rpc' = 'main'): Publisher | undefined {
    const s = this.session;
    if (!s || s.lost) return undefined;
    return which === 'rpc' ? s.rpcPublisher : s.publisher;
  }

  private livePublisher(which: 'main' | 'rpc' = 'main'): Publisher {
    const p = this.currentPublisher(which);
    if (!p) throw unavailable(this.state === 'stopped' ? 'broker stopped' : 'not connected to the broker');
    const blocked = this.session?.blocked;
    if (blocked) throw unavailable(`the broker blocks publishing (${blocked})`);
    return p;
  }

  private get url(): string {
    return this.urls[this.node % this.urls.length]!;
  }

  private async connectLoop(initial: boolean): Promise<void> {
    const signal = this.life.signal;
    for (let attempt = 1; ; attempt++) {
      // After a loss or a failed attempt, the next node of the list: a node that went down is
      // tried again only after the others.
      if (!initial || attempt > 1) {
        this.node++;
        await sleep(this.backoff.next(), signal);
      }
      if (signal.aborted) throw unavailable('broker stopped');
      try {
        await this.openSession();
        this.backoff.opened();
        if (!initial) this.metrics.reconnects.inc();
        this.log.info({ url: safeUrl(this.url), attempt }, initial ? 'connected to the broker' : 'reconnected to the broker');
        return;
      } catch (err) {
        if (signal.aborted) throw unavailable('broker stopped', err);
        if (initial && isPermanentBrokerError(err)) {
          this.log.error({ err, url: safeUrl(this.url) }, 'broker refused us; not retrying');
          throw err;
        }
        this.log.warn({ err, attempt, url: safeUrl(this.url) }, 'broker connection failed; retrying');
      }
    }
  }

  private async openSession(): Promise<void> {
    const conn = await this.connect('consume');
    const s: Session = { conn, ready: false, lost: false };
    this.watch(s, conn, 'consume');
    try {
      const pubConn = await this.connect('publish');
      s.pubConn = pubConn;
      this.watch(s, pubConn, 'publish');
      await assertTopology(conn, this.topology, this.log);
      // Two publisher channels: a message the broker refuses closes the channel it came on, and
      // the one carrying direct reply-to takes the replies of every call in flight with it.
      // Requests (whose properties are ours and checked) go on their own, so that an outbox row
      // naming a missing exchange fails no RPC call; each channel is reopened alone.
      const publisher = (onOpen?: (ch: ConfirmChannel) => Promise<void>, onChannelClosed?: (err: Error) => void) =>
        Publisher.open({
          open: () => pubConn.createConfirmChannel(),
          window: this.o.maxUnconfirmed ?? 256,
          confirmTimeoutMs: this.o.confirmTimeoutMs ?? DEFAULT_CONFIRM_TIMEOUT_MS,
          metrics: this.metrics,
          userId: this.user,
          logger: this.log,
          ...(onOpen ? { onOpen } : {}),
          ...(onChannelClosed ? { onChannelClosed } : {}),
          onDead: (err) => this.onLost(s, err),
        });
      s.publisher = await publisher();
      // Direct reply-to: consume before the first request is published, on the same channel.
      s.rpcPublisher = await publisher(
        async (ch) => {
          await ch.consume(DIRECT_REPLY_TO, this.rpc.onReply, { noAck: true });
        },
        // Replies to calls in flight went to the closed channel: those calls cannot succeed.
        (err) => this.rpc.failWaitingAfterTurn(err),
      );
      if (this.life.signal.aborted) throw unavailable('broker stopped');
      this.session = s;
      for (const c of this.consumers.values()) {
        if (c.hasHandlers) await c.attach(conn, (err) => this.onLost(s, err));
      }
      if (s.lost) throw unavailable('connection lost while starting');
      if (this.life.signal.aborted) throw unavailable('broker stopped');
      s.ready = true;
      this.metrics.connectionUp.set(1);
    } catch (err) {
      this.markLost(s, unavailable('connection setup failed', err));
      await closeSession(s);
      throw err;
    }
  }

  private async connect(role: 'consume' | 'publish'): Promise<ChannelModel> {
    const conn = await openConnection(this.url, `${this.o.service} ${role}`, this.o.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, this.o.heartbeatSeconds);
    if (this.life.signal.aborted) {
      // stop() came while we connected: it no longer waits for us, so this connection is ours to close.
      await conn.close().catch(() => undefined);
      throw unavailable('broker stopped');
    }
    return conn;
  }

  private watch(s: Session, conn: ChannelModel, role: 'consume' | 'publish'): void {
    conn.on('error', (err: Error) => this.log.warn({ err, role }, 'broker connection error'));
    conn.on('close', (err?: Error) => this.onLost(s, err ?? new Error(`${role} connection closed`)));
    if (role === 'consume') return;
    // Publishing stops until the alarm clears: readiness fails and callers hear UNAVAILABLE at once
    // instead of waiting for a confirm that will not come (consumers' own copies still wait, bounded).
    conn.on('blocked', (reason: string) => {
      s.blocked = reason || 'resource alarm';
      this.log.warn({ reason }, 'broker blocked publishing (resource alarm)');
    });
    conn.on('unblocked', () => {
      s.blocked = undefined;
      this.log.info('broker unblocked publishing');
    });
  }

  /**
   * A lost connection, consumer channel or a publisher that cannot reopen its channel recycles the
   * whole session (a publisher channel the broker closed over one message is reopened alone).
   */
  private onLost(s: Session, err: Error): void {
    const wasReady = s.ready;
    if (!this.markLost(s, unavailable('connection to the broker lost', err))) return;
    // A channel died but the connection may live: close it so all channels go together.
    void closeSession(s);
    if (wasReady && (this.state === 'running' || this.state === 'starting')) {
      this.backoff.lost();
      this.log.warn({ err }, 'broker connection lost; reconnecting');
      this.reconnecting ??= this.connectLoop(false)
        .catch((e: unknown) => this.log.info({ err: e }, 'reconnect loop ended'))
        .finally(() => {
          this.reconnecting = undefined;
        });
    }
  }

  private markLost(s: Session, err: Error): boolean {
    if (s.lost) return false;
    s.lost = true;
    s.ready = false;
    if (this.session === s) {
      this.session = undefined;
      this.metrics.connectionUp.set(0);
      for (const c of this.consumers.values()) c.detach();
    }
    // Unconfirmed means not sent: reject them rather than guess. Replies can only reach the
    // channel that asked, which is gone, so pending calls fail too.
    s.publisher?.failAll(err);
    s.rpcPublisher?.failAll(err);
    this.rpc.failAll(err);
    return true;
  }
}

/**
 * A broker for one service: validates the topology and the role map (BROKER_USER_ROLES) at once
 * (throws Error on a bad one), connects on start(). Every message it publishes carries `user_id`
 * (the URL's user); what it consumes is checked against the catalogue's callers and producers.
 */
export function createBroker(options: BrokerOptions): Broker {
  if (!options.url) throw new Error('url is required');
  if (!options.service) throw new Error('service is required');
  if (options.maxUnconfirmed !== undefined && !(Number.isInteger(options.maxUnconfirmed) && options.maxUnconfirmed >= 1)) {
    throw new Error('maxUnconfirmed must be an integer >= 1');
  }
  if (options.connectTimeoutMs !== undefined && !(Number.isInteger(options.connectTimeoutMs) && options.connectTimeoutMs >= 1)) {
    throw new Error('connectTimeoutMs must be an integer >= 1');
  }
  if (options.confirmTimeoutMs !== undefined && !(Number.isInteger(options.confirmTimeoutMs) && options.confirmTimeoutMs >= 1)) {
    throw new Error('confirmTimeoutMs must be an integer >= 1');
  }
  return new MessageBroker(options);
}

function closeSession(s: Session): Promise<unknown> {
  return Promise.all([s.conn.close().catch(() => undefined), s.pubConn?.close().catch(() => undefined)]);
}
