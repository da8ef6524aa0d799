import { ErrorCode, FleetError, Headers, fleetServices } from '@wallet-fleet/contracts';
import { BROKER_DEATH_HEADERS, type Broker, type BrokerAccess, type ErrorHistoryEntry, type PublishProps } from '@wallet-fleet/messaging';
import type { Channel, ChannelModel, GetMessage } from 'amqplib';

const DLQ_SUFFIX = '.dlq';

/** `audit.events` and `audit.events.dlq` both name the pair: returns the work queue and its DLQ. */
export function queuePair(arg: string): { queue: string; dlq: string } {
  const queue = arg.endsWith(DLQ_SUFFIX) ? arg.slice(0, -DLQ_SUFFIX.length) : arg;
  return { queue, dlq: `${queue}${DLQ_SUFFIX}` };
}

/**
 * Refuses, before anything moves, a replay whose copies the queue's consumer would not believe. A
 * queue of a fleet service (`<service>.<purpose>`) takes a message through the default exchange
 * only when its `user_id` is the service's own broker user (packages/messaging authorize.ts): a
 * replay as `ops` would put every copy back into the DLQ as `forbidden_producer`. A user without the
 * service's role is refused here; queues named otherwise are not checked.
 * @throws FleetError FORBIDDEN naming the credentials to use
 */
export function assertReplayer(arg: string, user: string, access: BrokerAccess): void {
  const { queue } = queuePair(arg);
  const owner = queue.split('.')[0] ?? '';
  if (!(fleetServices as readonly string[]).includes(owner) || (access.rolesOf(user) as readonly string[]).includes(owner)) return;
  throw new FleetError(
    ErrorCode.FORBIDDEN,
    `${queue} is a queue of the ${owner} service, whose consumers believe a replayed copy only from the ${owner} service's own broker user, not ${user}: run the replay with its credentials in AMQP_URL (docs/operations.md, Dead letters)`,
  );
}

/** One dead letter as an operator reads it. */
export interface DeadLetter {
  messageId: string | null;
  /** The routing key it was published with (what the consumer dispatches on). */
  routingKey: string | null;
  reason: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  /** The attempt that failed last. */
  attempt: number | null;
  /** When it was dead-lettered: the last error's time, or the broker's x-death time. */
  at: string | null;
  history: ErrorHistoryEntry[];
  headers: Record<string, unknown>;
  /** The body as JSON when it parses, else as text. */
  body: unknown;
}

/** Broker-written headers, meaningless on a replayed copy: its death records, and the quorum DLQ's own redelivery count (every peek adds one). */
const BROKER_HEADERS = [...BROKER_DEATH_HEADERS, 'x-delivery-count'];

function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/** The broker's `x-death` entry for `queue` (RabbitMQ dead-lettered it: delivery limit, expiry). */
function brokerDeath(headers: Record<string, unknown>, queue: string): { routingKey?: string; exchange?: string; reason?: string; time?: number } | undefined {
  const deaths = headers['x-death'];
  if (!Array.isArray(deaths)) return undefined;
  const entry = (deaths as Array<Record<string, unknown>>).find((d) => d && text(d.queue) === queue) ?? (deaths[0] as Record<string, unknown> | undefined);
  if (!entry) return undefined;
  const keys = entry['routing-keys'];
  // amqplib hands AMQP timestamps back as seconds, plain or wrapped as {'!': 'timestamp', value}.
  const rawTime = entry.time as unknown;
  const time = num(rawTime) ?? num((rawTime as { value?: unknown } | null | undefined)?.value);
  return {
    ...(Array.isArray(keys) && text(keys[0]) ? { routingKey: text(keys[0])! } : {}),
    ...(text(entry.exchange) !== undefined ? { exchange: text(entry.exchange)! } : {}),
    ...(text(entry.reason) ? { reason: text(entry.reason)! } : {}),
    ...(time !== undefined ? { time } : {}),
  };
}

// Lenient on purpose (a foreign or cut header is shown as no history), like the consumer's reader.
function history(raw: unknown): ErrorHistoryEntry[] {
  try {
    const parsed: unknown = JSON.parse(text(raw) ?? '[]');
    return Array.isArray(parsed) ? (parsed.filter((e) => e && typeof e === 'object') as ErrorHistoryEntry[]) : [];
  } catch {
    return [];
  }
}

/** What a dead letter says about itself, from its headers (ours, or the broker's `x-death`). */
function describeDeadLetter(msg: GetMessage, queue: string): DeadLetter {
  const headers = (msg.properties.headers ?? {}) as Record<string, unknown>;
  const hist = history(headers[Headers.errorHistory]);
  const death = brokerDeath(headers, queue);
  const bodyText = msg.content.toString('utf8');
  let body: unknown = bodyText;
  try {
    body = JSON.parse(bodyText);
  } catch {
    /* shown as text: malformed JSON is one of the reasons messages land here */
  }
  return {
    messageId: text(msg.properties.messageId) ?? null,
    routingKey: text(headers[Headers.originalRoutingKey]) ?? death?.routingKey ?? null,
    reason: text(headers[Headers.deathReason]) ?? (death?.reason ? `broker:${death.reason}` : null),
    errorCode: text(headers[Headers.errorCode]) ?? null,
    errorMessage: text(headers[Headers.errorMessage]) ?? null,
    attempt: num(headers[Headers.attempt]) ?? null,
    at: hist.at(-1)?.at ?? (death?.time ? new Date(death.time * 1000).toISOString() : null),
    history: hist,
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('utf8') : v])),
    body,
  };
}

/**
 * The headers of the copy that goes back to `queue`: attempt count reset to 1 (a replay comes after
 * a fix, so the message gets its full retry ladder again), the last error and the broker's death
 * records dropped, the error history kept as the trail, and the routing key the consumer
 * dispatches on made explicit (for messages RabbitMQ itself dead-lettered it is only in `x-death`).
 * `x-deadline` goes too: an operator replaying a message wants it processed now, not dropped as
 * expired. Returns undefined when the original routing key cannot be known: such a copy would only
 * come back as `no_handler`.
 */
function replayHeaders(raw: Record<string, unknown>, queue: string): Record<string, unknown> | undefined {
  const headers: Record<string, unknown> = { ...raw };
  const death = brokerDeath(raw, queue);
  const routingKey = text(raw[Headers.originalRoutingKey]) ?? death?.routingKey;
  if (!routingKey || routingKey === queue) return undefined;
  headers[Headers.originalRoutingKey] = routingKey;
  headers[Headers.originalExchange] = text(raw[Headers.originalExchange]) ?? death?.exchange ?? '';
  headers[Headers.originalQueue] = queue;
  for (const h of [...BROKER_HEADERS, Headers.deathReason, Headers.errorCode, Headers.errorMessage, Headers.deadline]) delete headers[h];
  headers[Headers.attempt] = 1;
  return headers;
}

/** Properties kept on the replayed copy; reply_to (a caller long gone) and expiration are not. */
function copyProps(p: GetMessage['properties'], headers: Record<string, unknown>): PublishProps {
  return {
    persistent: true,
    mandatory: true,
    headers,
    ...(p.contentType ? { contentType: String(p.contentType) } : {}),
    ...(p.messageId ? { messageId: String(p.messageId) } : {}),
    ...(p.correlationId ? { correlationId: String(p.correlationId) } : {}),
    ...(p.timestamp ? { timestamp: Number(p.timestamp) } : {}),
    ...(p.type ? { type: String(p.type) } : {}),
    ...(p.appId ? { appId: String(p.appId) } : {}),
  };
}

/** Requeues every message held on `ch`; on a dead channel the broker has requeued them already. */
function giveBack(ch: Channel): void {
  try {
    ch.nackAll(true);
  } catch {
    /* channel closed: nothing is held any more */
  }
}

/**
 * Opens a channel on `conn` and checks that `dlq` exists.
 * @throws FleetError NOT_FOUND when there is no such queue in the vhost.
 */
async function openDlq(conn: ChannelModel, dlq: string): Promise<{ ch: Channel; count: number }> {
  const ch = await conn.createChannel();
  // A 404 closes the channel with an error event; the rejected promise below is what we act on.
  ch.on('error', () => undefined);
  try {
    const { messageCount } = await ch.checkQueue(dlq);
    return { ch, count: messageCount };
  } catch (e) {
    if (/NOT_FOUND/.test(String((e as Error).message))) throw new FleetError(ErrorCode.NOT_FOUND, `no queue ${dlq} in this vhost`);
    throw e;
  }
}

/**
 * Reads up to `n` dead letters without removing them: they are held unacknowledged while read (so
 * that the same one is not read twice) and then given back.
 * @throws FleetError NOT_FOUND (no such DLQ)
 */
export async function peek(conn: ChannelModel, arg: string, n: number): Promise<{ dlq: string; total: number; messages: DeadLetter[] }> {
  const { queue, dlq } = queuePair(arg);
  const { ch, count } = await openDlq(conn, dlq);
  const messages: DeadLetter[] = [];
  try {
    while (messages.length < n) {
      const m = await ch.get(dlq, { noAck: false });
      if (!m) break;
      messages.push(describeDeadLetter(m, queue));
    }
  } finally {
    // nackAll(requeue) hands every held message back in one frame.
    giveBack(ch);
    await ch.close().catch(() => undefined);
  }
  return { dlq, total: count, messages };
}

/**
 * Empties a DLQ for good; returns how many messages it held.
 * @throws FleetError NOT_FOUND (no such DLQ)
 */
export async function purge(conn: ChannelModel, arg: string): Promise<{ dlq: string; purged: number }> {
  const { dlq } = queuePair(arg);
  const { ch } = await openDlq(conn, dlq);
  try {
    const { messageCount } = await ch.purgeQueue(dlq);
    return { dlq, purged: messageCount };
  } finally {
    await ch.close().catch(() => undefined);
  }
}

/** How many messages a DLQ holds now (ready ones: what replay and peek can see). */
export async function depth(conn: ChannelModel, dlq: string): Promise<number> {
  const { ch, count } = await openDlq(conn, dlq);
  await ch.close().catch(() => undefined);
  return count;
}

export interface ReplayReport {
  queue: string;
  dlq: string;
  /** Ids of the messages moved back, in order. */
  replayed: Array<string | null>;
  /** Left in the DLQ because the routing key they were published with is unknown. */
  skipped: Array<{ messageId: string | null; why: string }>;
  /** `--id` values not found in the DLQ. */
  notFound: string[];
  /** The publish that failed and stopped the run; that message and all after it are still in the DLQ. */
  error?: { code: string; message: string; messageId: string | null };
}

/**
 * Moves dead letters back to the work queue they came from, one at a time: each copy is published
 * (mandatory, with a publisher confirm) through the default exchange straight to `queue`, and the
 * DLQ message is acked only after that confirm. A copy the broker does not confirm or returns (the
 * queue is gone) stops the run with that message still in the DLQ. If the connection drops between
 * the confirm and the ack, the DLQ message is requeued by the broker and the copy exists too:
 * at-least-once, never lost (consumers that change state deduplicate by message id).
 *
 * Why the default exchange and not the original exchange and routing key: a dead letter failed in
 * one consumer only; republishing it to `wallet.events` would deliver it again to every other
 * queue bound to that key, which already processed it. The consumer reads the routing key to
 * dispatch on from `x-original-routing-key` when a message arrives through the default exchange.
 *
 * Only the messages in the DLQ when the run starts are looked at, so a copy that fails again and
 * comes back is not replayed a second time in the same run. With `ids`, the other messages are held
 * unacknowledged while the DLQ is scanned, then given back.
 *
 * @throws FleetError NOT_FOUND (no such DLQ); publish failures are reported in `error`, not thrown.
 */
export async function replay(
  conn: ChannelModel,
  broker: Broker,
  arg: string,
  opts: { ids?: ReadonlySet<string>; onProgress?: (done: number, total: number) => void },
): Promise<ReplayReport> {
  const { queue, dlq } = queuePair(arg);
  const { ch, count } = await openDlq(conn, dlq);
  const report: ReplayReport = { queue, dlq, replayed: [], skipped: [], notFound: [] };
  const wanted = opts.ids ? new Set(opts.ids) : undefined;
  try {
    for (let seen = 0; seen < count; seen++) {
      if (wanted && wanted.size === 0) break;
      const m = await ch.get(dlq, { noAck: false });
      if (!m) break;
      const id = text(m.properties.messageId) ?? null;
      if (wanted && (id === null || !wanted.has(id))) continue; // held until the end, then given back
      wanted?.delete(id!);
      const headers = replayHeaders((m.properties.headers ?? {}) as Record<string, unknown>, queue);
      if (!headers) {
        report.skipped.push({ messageId: id, why: 'the routing key it was published with is unknown (no x-original-routing-key, no x-death)' });
        continue;
      }
      try {
        await broker.publish('', queue, m.content, copyProps(m.properties, headers));
      } catch (e) {
        const code = e instanceof FleetError ? e.code : ErrorCode.UNAVAILABLE;
        const why = code === ErrorCode.UNROUTABLE ? `${queue} did not take the copy (no such queue?)` : `the copy was not confirmed: ${(e as Error).message}`;
        report.error = { code, message: why, messageId: id };
        break;
      }
      try {
        ch.ack(m);
      } catch (e) {
        // The DLQ channel died after the confirm: the broker gives the message back to the DLQ
        // while its copy is in the work queue (a duplicate the consumer's dedup absorbs).
        report.replayed.push(id);
        report.error = {
          code: ErrorCode.UNAVAILABLE,
          message: `copied, but the DLQ message could not be acked and stays in ${dlq}: ${(e as Error).message}`,
          messageId: id,
        };
        break;
      }
      report.replayed.push(id);
      opts.onProgress?.(report.replayed.length, wanted ? opts.ids!.size : count);
    }
    if (wanted) report.notFound = [...wanted];
  } finally {
    // Everything still held (not selected, skipped, or the one whose copy failed) goes back.
    giveBack(ch);
    await ch.close().catch(() => undefined);
  }
  return report;
}
