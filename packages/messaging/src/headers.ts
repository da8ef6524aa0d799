import { randomUUID } from 'node:crypto';
import { childTraceparent, currentContext } from '@wallet-fleet/service-kit';

/** The header carrying the correlation id on every message (events too; RPC also sets the property). */
export const CORRELATION_HEADER = 'x-correlation-id';

/**
 * Correlation id and traceparent for an outgoing message: those of the current work context (so
 * a publish inside a handler continues its trace), else a fresh correlation id and a new trace.
 */
export function outgoingTrace(fallbackCorrelationId?: string): { correlationId: string; traceparent: string } {
  const ctx = currentContext();
  return {
    correlationId: ctx?.correlationId ?? fallbackCorrelationId ?? randomUUID(),
    traceparent: ctx?.traceparent ?? childTraceparent(undefined),
  };
}

/** A header value as a string (amqplib hands long strings back as Buffers in some paths). */
export function headerString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

/** A header value as a finite number (numbers may arrive as strings from foreign clients). */
export function headerNumber(v: unknown): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : typeof v === 'bigint' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Headers RabbitMQ writes when it dead-letters a message. Re-sending them would only confuse the next
 * reader: the consumer drops them from its retry and DLQ copies, fleetctl from a replayed copy.
 */
export const BROKER_DEATH_HEADERS = [
  'x-death',
  'x-first-death-exchange',
  'x-first-death-queue',
  'x-first-death-reason',
  'x-last-death-exchange',
  'x-last-death-queue',
  'x-last-death-reason',
];
