import { getOrCreateMetric } from '@wallet-fleet/service-kit';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  consumed: Counter<'queue' | 'routing_key' | 'outcome'>;
  published: Counter<'routing_key' | 'outcome'>;
  failed: Counter<'queue' | 'routing_key' | 'code'>;
  retried: Counter<'queue' | 'routing_key'>;
  deadLettered: Counter<'queue' | 'routing_key' | 'reason'>;
  forbidden: Counter<'queue' | 'routing_key'>;
  handlerDuration: Histogram<'queue' | 'routing_key' | 'outcome'>;
  unconfirmed: Gauge;
  connectionUp: Gauge;
  reconnects: Counter;
}

/**
 * The messaging metrics, registered in `registry` (a private one when none is given, so that two
 * brokers in one process never collide in the global registry). A metric already registered
 * under the same name is reused, so two brokers may share a service's registry.
 */
export function createMetrics(registry: Registry = new Registry()): Metrics {
  const get = <T>(name: string, make: () => T): T => getOrCreateMetric(registry, name, make);
  const registers = [registry];
  return {
    consumed: get(
      'messaging_consumed_total',
      () =>
        new Counter({
          name: 'messaging_consumed_total',
          help: 'Messages taken off a queue, by outcome (ack, retry, dead_letter, reply_error, expired, requeued)',
          labelNames: ['queue', 'routing_key', 'outcome'] as const,
          registers,
        }),
    ),
    published: get(
      'messaging_published_total',
      () =>
        new Counter({
          name: 'messaging_published_total',
          help: 'Publishes, by outcome (confirmed, nacked, unroutable, unavailable)',
          labelNames: ['routing_key', 'outcome'] as const,
          registers,
        }),
    ),
    failed: get(
      'messaging_handler_failed_total',
      () =>
        new Counter({
          name: 'messaging_handler_failed_total',
          help: 'Handler failures, by error code',
          labelNames: ['queue', 'routing_key', 'code'] as const,
          registers,
        }),
    ),
    retried: get(
      'messaging_retried_total',
      () =>
        new Counter({
          name: 'messaging_retried_total',
          help: 'Messages sent to a delay queue for another attempt',
          labelNames: ['queue', 'routing_key'] as const,
          registers,
        }),
    ),
    deadLettered: get(
      'messaging_dead_lettered_total',
      () =>
        new Counter({
          name: 'messaging_dead_lettered_total',
          help: 'Messages moved to a DLQ, by reason',
          labelNames: ['queue', 'routing_key', 'reason'] as const,
          registers,
        }),
    ),
    forbidden: get(
      'messaging_forbidden_total',
      () =>
        new Counter({
          name: 'messaging_forbidden_total',
          help: 'Messages refused because their sender (user_id → role) may not send them: FORBIDDEN replies and forbidden_producer dead letters',
          labelNames: ['queue', 'routing_key'] as const,
          registers,
        }),
    ),
    handlerDuration: get(
      'messaging_handler_duration_seconds',
      () =>
        new Histogram({
          name: 'messaging_handler_duration_seconds',
          help: 'Handler run time (a whole batch for batch handlers)',
          labelNames: ['queue', 'routing_key', 'outcome'] as const,
          registers,
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        }),
    ),
    unconfirmed: get(
      'messaging_unconfirmed_messages',
      () =>
        new Gauge({
          name: 'messaging_unconfirmed_messages',
          help: 'Publishes waiting for a broker confirm',
          registers,
        }),
    ),
    connectionUp: get(
      'messaging_connection_up',
      () =>
        new Gauge({
          name: 'messaging_connection_up',
          help: '1 while connected with topology asserted and consumers running',
          registers,
        }),
    ),
    reconnects: get(
      'messaging_reconnects_total',
      () =>
        new Counter({
          name: 'messaging_reconnects_total',
          help: 'Connections re-established after a loss',
          registers,
        }),
    ),
  };
}
