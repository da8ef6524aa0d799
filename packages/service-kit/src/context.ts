import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';

/**
 * What travels with one unit of work (a consumed message, an HTTP request): ids that every log
 * line written while handling it carries.
 */
export interface WorkContext {
  correlationId?: string;
  traceparent?: string;
  messageId?: string;
  queue?: string;
  routingKey?: string;
}

const storage = new AsyncLocalStorage<WorkContext>();

/** Runs `fn` with `ctx` as the current work context (nested calls see the merged context). */
export function runWithContext<T>(ctx: WorkContext, fn: () => T): T {
  const parent = storage.getStore();
  return storage.run(parent ? { ...parent, ...ctx } : ctx, fn);
}

/** The current work context, if any. */
export function currentContext(): WorkContext | undefined {
  return storage.getStore();
}

// Ids are cut from a pooled buffer of random bytes, refilled 4 KiB at a time: a randomBytes()
// call per id is a measurable share of consuming a message at thousands per second.
const pool = Buffer.alloc(4096);
let offset = pool.length;
function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A W3C traceparent for a child span of `parent` (same trace id, new span id), or a new trace when
 * `parent` is missing or malformed. https://www.w3.org/TR/trace-context/#traceparent-header
 */
export function childTraceparent(parent?: unknown): string {
  const m = typeof parent === 'string' ? TRACEPARENT.exec(parent) : null;
  const traceId = m?.[1] && !/^0+$/.test(m[1]) ? m[1] : randomHex(16);
  const flags = m?.[3] ?? '01';
  return `00-${traceId}-${randomHex(8)}-${flags}`;
}
