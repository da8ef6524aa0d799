import { Exchanges } from '@wallet-fleet/contracts';
import type { Logger } from '@wallet-fleet/service-kit';
import type { Channel, ChannelModel } from 'amqplib';
import { z } from 'zod';
import type { RetryPolicy } from './retry.js';

/** One work queue of a service. Its name is a contract: renaming it is a migration. */
export interface QueueSpec {
  /** `<service>.<purpose>`, e.g. `audit.events`. `.dlq` is derived from it. */
  name: string;
  /** rpc: replies, never retries; events: retries through the service's delay tiers, then the DLQ. */
  kind: 'rpc' | 'events';
  bindings: Array<{ exchange: string; pattern: string }>;
  /** Unacknowledged deliveries per consumer, default 32. */
  prefetch?: number;
  /**
   * Redeliveries before the broker dead-letters a poison message, default 10. A policy of the broker
   * definitions (`delivery-limit`), not a queue argument: an operator changes it without re-declaring.
   */
  deliveryLimit?: number;
  /** events only; default 5 attempts, 1 s doubling to at most 5 min, ±20 %. */
  retry?: RetryPolicy;
}

export interface Topology {
  exchanges?: Array<{ name: string; type: 'topic' | 'direct' | 'fanout' }>;
  queues: QueueSpec[];
  /**
   * The delays (ms) a retry or deferral can wait, one quorum queue per tier and service
   * (`<service>.delay.<ms>`), default DELAY_TIERS_MS. A delay is rounded to the nearest tier.
   */
  delayTiers?: number[];
}

/** Filled-in queue spec (what defineTopology returns). */
export type ResolvedQueueSpec = QueueSpec & { prefetch: number; deliveryLimit: number };

const DEFAULT_PREFETCH = 32;
const DEFAULT_DELIVERY_LIMIT = 10;
const DEFAULT_RETRY: Required<RetryPolicy> = {
  maxAttempts: 5,
  initialDelayMs: 1_000,
  maxDelayMs: 5 * 60_000,
  factor: 2,
  jitter: 0.2,
};

/**
 * The fleet-owned topic exchange that retry copies and dead letters travel through (routing key =
 * the target queue's name, bound to exactly that queue). Publishing through it rather than the
 * default exchange puts these copies under topic permissions: a service may only write keys of
 * its own queues (see definitions.ts).
 */
export const RETRY_EXCHANGE = 'wallet.retry';

/**
 * Where the delay tiers dead-letter expired copies, keeping their routing key `<queue>.delay.<ms>`;
 * each event queue binds `<queue>.delay.*`, so a copy comes back to its own queue. Nobody may publish
 * into it (topic permissions): what arrives there was held by a tier.
 */
export const DELAYED_EXCHANGE = 'wallet.delayed';

/**
 * The alternate exchange of `wallet.events` (a policy of the broker definitions) and its parking
 * quorum queue: an event no queue is bound for is kept there instead of confirmed and dropped.
 */
export const UNROUTABLE = 'wallet.unroutable';

/**
 * Default delay tiers: 1 s, 5 s, 30 s, 2 min, 10 min, 1 h. Each tier is a queue with a queue-level TTL,
 * so every message in it waits exactly as long and expires in order: none waits behind a longer delay.
 */
export const DELAY_TIERS_MS = [1_000, 5_000, 30_000, 120_000, 600_000, 3_600_000];

export const dlqName = (queue: string) => `${queue}.dlq`;
/** The service part of a queue name (`audit` of `audit.events`): delay tiers are per service. */
const serviceOf = (queue: string) => queue.slice(0, queue.indexOf('.'));
const delayQueueName = (service: string, ms: number) => `${service}.delay.${ms}`;
/** The routing key of a copy waiting in a tier for `queue` (on wallet.retry, then wallet.delayed). */
export const delayKey = (queue: string, ms: number) => `${queue}.delay.${ms}`;

/**
 * The tier a delay waits in: the nearest one on a logarithmic scale (2 s → 1 s, 3 s → 5 s), the
 * first one below it, the last one above it.
 */
export function delayTier(delayMs: number, tiers: readonly number[]): number {
  let best = tiers[0]!;
  for (const t of tiers) if (Math.abs(Math.log(t) - Math.log(Math.max(1, delayMs))) < Math.abs(Math.log(best) - Math.log(Math.max(1, delayMs)))) best = t;
  return best;
}

const name = z.string().min(1).max(200);
const queueName = name
  .regex(/^[a-z0-9-]+(\.[a-zA-Z0-9_-]+)+$/, 'queue names are `<service>.<purpose>` (lowercase service, dotted)')
  .refine((n) => !/\.dlq$|\.retry\.\d+$|\.delay\.\d+$/.test(n), 'names ending in `.dlq`, `.retry.<n>` or `.delay.<n>` are derived, not declared')
  .refine((n) => !n.startsWith('amq.'), '`amq.` is reserved by RabbitMQ');

const retrySchema = z
  .object({
    maxAttempts: z.number().int().min(1).max(25),
    initialDelayMs: z.number().int().min(0),
    maxDelayMs: z.number().int().min(0),
    factor: z.number().min(1).max(10).optional(),
    jitter: z.number().min(0).max(1).optional(),
  })
  .strict()
  .refine((r) => r.maxDelayMs >= r.initialDelayMs, 'maxDelayMs must be >= initialDelayMs');

const queueSchema = z
  .object({
    name: queueName,
    kind: z.enum(['rpc', 'events']),
    // An empty pattern is how fanout exchanges are bound.
    bindings: z.array(z.object({ exchange: name, pattern: z.string().max(255) }).strict()),
    prefetch: z.number().int().min(1).max(10_000).default(DEFAULT_PREFETCH),
    deliveryLimit: z.number().int().min(1).max(1_000).default(DEFAULT_DELIVERY_LIMIT),
    retry: retrySchema.optional(),
  })
  .strict()
  .refine((q) => q.kind === 'events' || q.retry === undefined, {
    message: 'rpc queues never retry (the caller decides); remove `retry`',
    path: ['retry'],
  });

const topologySchema = z
  .object({
    exchanges: z
      .array(z.object({ name: name.refine((n) => !n.startsWith('amq.'), '`amq.` is reserved'), type: z.enum(['topic', 'direct', 'fanout']) }).strict())
      .optional(),
    queues: z.array(queueSchema),
    delayTiers: z
      .array(
        z
          .number()
          .int()
          .min(1)
          .max(2 ** 32 - 1),
      )
      .min(1)
      .max(12)
      .refine((t) => t.every((x, i) => i === 0 || x > t[i - 1]!), 'delay tiers must be ascending and distinct')
      .optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    const seen = new Set<string>();
    for (const [i, q] of t.queues.entries()) {
      if (seen.has(q.name)) ctx.addIssue({ code: 'custom', message: `queue ${q.name} declared twice`, path: ['queues', i, 'name'] });
      seen.add(q.name);
    }
    const known = new Set<string>([Exchanges.commands, Exchanges.events, ...(t.exchanges ?? []).map((e) => e.name)]);
    for (const [i, q] of t.queues.entries()) {
      for (const [j, b] of q.bindings.entries()) {
        if (!known.has(b.exchange)) {
          ctx.addIssue({ code: 'custom', message: `exchange ${b.exchange} is not declared`, path: ['queues', i, 'bindings', j, 'exchange'] });
        }
      }
    }
  });

/**
 * Validates a topology and fills its defaults (prefetch, deliveryLimit, retry of event queues).
 * Throws an Error naming every offending field: a bad topology is a programming error, found at
 * start-up rather than in production traffic.
 */
export function defineTopology(t: Topology): Topology {
  const parsed = topologySchema.safeParse(t);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid topology: ${lines.join('; ')}`);
  }
  const queues = parsed.data.queues.map((q) => {
    const spec: ResolvedQueueSpec = { ...q, bindings: q.bindings.map((b) => ({ ...b })) } as ResolvedQueueSpec;
    if (q.kind === 'events') spec.retry = { ...DEFAULT_RETRY, ...(q.retry ?? {}) };
    else delete spec.retry;
    return spec;
  });
  return { ...(parsed.data.exchanges ? { exchanges: parsed.data.exchanges } : {}), queues, delayTiers: parsed.data.delayTiers ?? DELAY_TIERS_MS };
}

/** The services (queue-name prefixes) of a topology whose event queues retry, each with its delay tiers. */
export function delayQueues(topology: Topology): Array<{ service: string; ms: number; name: string }> {
  const services = [...new Set(topology.queues.filter((q) => q.kind === 'events').map((q) => serviceOf(q.name)))];
  return services.flatMap((service) => (topology.delayTiers ?? DELAY_TIERS_MS).map((ms) => ({ service, ms, name: delayQueueName(service, ms) })));
}

/**
 * A queue or exchange as the broker holds it: `assertTopology` declares these, and the broker
 * definitions carry the same (so queues exist before their consumer first runs).
 */
export interface Declared {
  exchanges: Array<{ name: string; type: 'topic' | 'direct' | 'fanout' }>;
  queues: Array<{ name: string; arguments: Record<string, unknown> }>;
  bindings: Array<{ queue: string; exchange: string; pattern: string }>;
}

/**
 * Everything a topology declares. Queue arguments are only what cannot be a policy (type, TTL of a
 * tier, where each queue dead-letters): a queue's arguments can never change (406), a policy can.
 * Limits and the dead-letter strategy come from `topologyPolicies`.
 */
export function declarations(topology: Topology): Declared {
  const exchanges: Declared['exchanges'] = [
    { name: Exchanges.commands, type: 'topic' },
    { name: Exchanges.events, type: 'topic' },
    { name: RETRY_EXCHANGE, type: 'topic' },
    { name: DELAYED_EXCHANGE, type: 'topic' },
    ...(topology.exchanges ?? []),
  ];
  const queues: Declared['queues'] = [];
  const bindings: Declared['bindings'] = [];
  for (const d of delayQueues(topology)) {
    // Queue-level TTL: every copy in a tier waits as long, so they expire in order (per-message TTL
    // only expires at the head). Expired copies go to wallet.delayed under their own routing key.
    queues.push({ name: d.name, arguments: { 'x-queue-type': 'quorum', 'x-message-ttl': d.ms, 'x-dead-letter-exchange': DELAYED_EXCHANGE } });
    bindings.push({ queue: d.name, exchange: RETRY_EXCHANGE, pattern: `${d.service}.#.delay.${d.ms}` });
  }
  for (const q of topology.queues) {
    queues.push({ name: dlqName(q.name), arguments: { 'x-queue-type': 'quorum' } });
    bindings.push({ queue: dlqName(q.name), exchange: RETRY_EXCHANGE, pattern: dlqName(q.name) });
    // The poison-message backstop: past the delivery limit (policy) the broker itself moves the
    // message to the DLQ.
    queues.push({ name: q.name, arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dlqName(q.name) } });
    if (q.kind === 'events') bindings.push({ queue: q.name, exchange: DELAYED_EXCHANGE, pattern: `${q.name}.delay.*` });
    for (const b of q.bindings) bindings.push({ queue: q.name, exchange: b.exchange, pattern: b.pattern });
  }
  return { exchanges, queues, bindings };
}

/** A RabbitMQ policy as the definitions format and the management API take it. */
export interface Policy {
  name: string;
  pattern: string;
  'apply-to': 'queues' | 'exchanges';
  priority: number;
  definition: Record<string, unknown>;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The policies of a topology: per work queue its delivery limit; on every queue that dead-letters
 * (work queues, delay tiers) at-least-once dead-lettering, which RabbitMQ applies only together with
 * `overflow: reject-publish` (the default at-most-once drops a message whose target has no majority).
 * Policies, not arguments, so that they change on a running broker without re-declaring anything.
 */
export function topologyPolicies(topology: Topology): Policy[] {
  const atLeastOnce = { 'dead-letter-strategy': 'at-least-once', overflow: 'reject-publish' };
  const policies: Policy[] = topology.queues.map((raw) => {
    const q = raw as ResolvedQueueSpec;
    return {
      name: `wallet-fleet ${q.name}`,
      pattern: `^${escapeRegExp(q.name)}$`,
      'apply-to': 'queues',
      priority: 10,
      definition: { ...atLeastOnce, 'delivery-limit': q.deliveryLimit },
    };
  });
  for (const service of new Set(delayQueues(topology).map((d) => d.service))) {
    policies.push({
      name: `wallet-fleet ${service}.delay`,
      pattern: `^${escapeRegExp(service)}\\.delay\\.[0-9]+$`,
      'apply-to': 'queues',
      priority: 10,
      definition: atLeastOnce,
    });
  }
  return policies;
}

/**
 * Declares everything on `conn` (idempotent; run at start and after every reconnect). Throws the
 * amqplib error (406 PRECONDITION_FAILED) when the broker holds a different declaration, except for
 * a work queue declared before delivery limits became a policy (its `x-delivery-limit` argument
 * stays; the lower of it and the policy applies): that queue is only checked to exist, and `log`
 * says so.
 */
export async function assertTopology(conn: ChannelModel, topology: Topology, log: Logger): Promise<void> {
  const { exchanges, queues, bindings } = declarations(topology);
  // A 406 closes the channel it came on: declarations get a channel of their own.
  let ch: Channel = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    for (const e of exchanges) await ch.assertExchange(e.name, e.type, { durable: true });
    for (const q of queues) {
      try {
        await ch.assertQueue(q.name, { durable: true, arguments: q.arguments });
      } catch (err) {
        if (!/inequivalent arg 'x-delivery-limit'/.test(String((err as Error).message))) throw err;
        log.warn({ queue: q.name }, 'queue declared with an x-delivery-limit argument by an older release: kept; the lower of it and the policy applies');
        ch = await conn.createChannel();
        ch.on('error', () => undefined);
        await ch.checkQueue(q.name);
      }
    }
    for (const b of bindings) await ch.bindQueue(b.queue, b.exchange, b.pattern);
  } finally {
    await ch.close().catch(() => undefined);
  }
}
