import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

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

// randomUUID draws from a cached entropy pool; a randomBytes() call per message costs a syscall-
// sized chunk of the hot path. A v4 UUID has 122 random bits: the version/variant nibbles are
// replaced so that the id is not constant in those positions.
function randomHex32(): string {
  const u = randomUUID().replace(/-/g, '');
  return `${u.slice(0, 12)}${u[13]}${u.slice(14, 16)}${u[17]}${u.slice(18)}${u.slice(20, 22)}`;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A W3C traceparent for a child span of `parent` (same trace id, new span id), or a new trace when
 * `parent` is missing or malformed. https://www.w3.org/TR/trace-context/#traceparent-header
 */
export function childTraceparent(parent?: unknown): string {
  const m = typeof parent === 'string' ? TRACEPARENT.exec(parent) : null;
  const traceId = m?.[1] && !/^0+$/.test(m[1]) ? m[1] : randomHex32();
  const flags = m?.[3] ?? '01';
  return `00-${traceId}-${randomHex32().slice(0, 16)}-${flags}`;
}
