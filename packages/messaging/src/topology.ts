import { Exchanges } from '@wallet-fleet/contracts';
import type { Channel } from 'amqplib';
import { z } from 'zod';
import type { RetryPolicy } from './retry.js';

/** One work queue of a service. Its name is a contract: renaming it is a migration. */
export interface QueueSpec {
  /** `<service>.<purpose>`, e.g. `audit.events`. `.dlq` and `.retry.<n>` are derived from it. */
  name: string;
  /** rpc: replies, never retries; events: retries through delay queues, then the DLQ. */
  kind: 'rpc' | 'events';
  bindings: Array<{ exchange: string; pattern: string }>;
  /** Unacknowledged deliveries per consumer, default 32. */
  prefetch?: number;
  /** Quorum `x-delivery-limit`: redeliveries before the broker dead-letters a poison message, default 10. */
  deliveryLimit?: number;
  /** events only; default 5 attempts, 1 s doubling to at most 5 min, ±20 %. */
  retry?: RetryPolicy;
}

export interface Topology {
  exchanges?: Array<{ name: string; type: 'topic' | 'direct' | 'fanout' }>;
  queues: QueueSpec[];
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

export const dlqName = (queue: string) => `${queue}.dlq`;
export const retryQueueName = (queue: string, attempt: number) => `${queue}.retry.${attempt}`;

const name = z.string().min(1).max(200);
const queueName = name
  .regex(/^[a-z0-9-]+(\.[a-zA-Z0-9_-]+)+$/, 'queue names are `<service>.<purpose>` (lowercase service, dotted)')
  .refine((n) => !/\.dlq$|\.retry\.\d+$/.test(n), 'names ending in `.dlq` or `.retry.<n>` are derived, not declared')
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
  return { ...(parsed.data.exchanges ? { exchanges: parsed.data.exchanges } : {}), queues };
}

/** Queue arguments are part of the contract: RabbitMQ refuses (406) to re-declare a queue with others. */
function workQueueArgs(q: ResolvedQueueSpec): Record<string, unknown> {
  return {
    'x-queue-type': 'quorum',
    'x-delivery-limit': q.deliveryLimit,
    // The poison-message backstop: past the delivery limit the broker itself moves the message to
    // the DLQ. Expired requests take the same path (x-death reason `expired`).
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': dlqName(q.name),
  };
}

/**
 * Declares everything on `ch` (idempotent; run at start and after every reconnect). Throws the
 * amqplib error (406 PRECONDITION_FAILED closes `ch`) when the broker holds a different declaration.
 */
export async function assertTopology(ch: Channel, topology: Topology): Promise<void> {
  await ch.assertExchange(Exchanges.commands, 'topic', { durable: true });
  await ch.assertExchange(Exchanges.events, 'topic', { durable: true });
  await ch.assertExchange(RETRY_EXCHANGE, 'topic', { durable: true });
  for (const e of topology.exchanges ?? []) await ch.assertExchange(e.name, e.type, { durable: true });
  for (const raw of topology.queues) {
    const q = raw as ResolvedQueueSpec;
    await ch.assertQueue(dlqName(q.name), { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await ch.bindQueue(dlqName(q.name), RETRY_EXCHANGE, dlqName(q.name));
    await ch.assertQueue(q.name, { durable: true, arguments: workQueueArgs(q) });
    if (q.kind === 'events' && q.retry) {
      // One delay queue per attempt level: per-message TTL only expires at the head of a queue, so
      // mixing 1 s and 5 min delays in one queue would hold the short ones behind the long ones.
      // Within one level delays differ by the jitter only. Expired messages go back to the work
      // queue through the default exchange.
      for (let n = 1; n < q.retry.maxAttempts; n++) {
        await ch.assertQueue(retryQueueName(q.name, n), {
          durable: true,
          arguments: { 'x-queue-type': 'quorum', 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': q.name },
        });
        await ch.bindQueue(retryQueueName(q.name, n), RETRY_EXCHANGE, retryQueueName(q.name, n));
      }
    }
    for (const b of q.bindings) await ch.bindQueue(q.name, b.exchange, b.pattern);
  }
}
