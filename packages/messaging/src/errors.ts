import { ErrorCode, FleetError, type FieldError } from '@wallet-fleet/contracts';

/**
 * What a thrown value means to the message runtime. Anything that is not a FleetError counts as
 * `INTERNAL` and non-retryable, on purpose: for signing and money a blind retry can double an
 * effect, so only a handler that knows a retry is safe says `retryable: true`.
 */
export function asFleetError(e: unknown): FleetError {
  if (e instanceof FleetError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new FleetError(ErrorCode.INTERNAL, message || 'internal error', { retryable: false, cause: e });
}

/** The broker cannot take the message now (connection down, channel closed, nacked); retry later. */
export function unavailable(message: string, cause?: unknown): FleetError {
  return new FleetError(ErrorCode.UNAVAILABLE, message, { retryable: true, ...(cause === undefined ? {} : { cause }) });
}

/** amqplib errors that no reconnect will cure: bad credentials, unknown vhost, topology mismatch. */
export function isPermanentBrokerError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err?.code === 'number' ? err.code : undefined;
  if (code === 403 || code === 406 || code === 530) return true;
  return typeof err?.message === 'string' && /ACCESS_REFUSED|PRECONDITION_FAILED|NOT_ALLOWED/.test(err.message);
}

/** VALIDATION_FAILED listing the failing fields in its message (`invalid userId: …; chain: …`) and in details.fields. */
export function validationFailed(fields: FieldError[]): FleetError {
  const list = fields.map((f) => `${f.path}: ${f.message}`).join('; ');
  return FleetError.validation(fields, `invalid ${list}`);
}

/**
 * A handler's outcome "not now, and this does not count as an attempt": the dependency was not
 * asked (an open breaker), so the message comes back after `delayMs` with the same attempt number.
 * Thrown (or returned as the error of a batch item) by a handler; the consumer does the broker's
 * part: a copy through the queue's first delay queue, confirmed before the original is acked, its
 * headers (error history included) kept as they were. `reason` is logged; on a queue with no delay
 * queue (no retries) or an rpc queue, `reason` is the outcome.
 */
export class Deferral extends Error {
  readonly reason: FleetError;
  readonly delayMs: number;
  /** Fraction of the delay randomly added or removed (0..1), so that deferred messages do not return all at once. */
  readonly jitter: number;
  constructor(reason: unknown, opts: { delayMs: number; jitter?: number }) {
    const err = asFleetError(reason);
    super(err.message);
    this.name = 'Deferral';
    this.reason = err;
    // The delay becomes a per-message TTL (`expiration`): RabbitMQ takes whole milliseconds up to 2^32-1.
    if (
      !(Number.isFinite(opts.delayMs) && opts.delayMs >= 0 && opts.delayMs <= 2 ** 32 - 1) ||
      !(opts.jitter === undefined || (opts.jitter >= 0 && opts.jitter <= 1))
    ) {
      throw new RangeError('a deferral needs 0 <= delayMs <= 2^32-1 and 0 <= jitter <= 1');
    }
    this.delayMs = opts.delayMs;
    this.jitter = opts.jitter ?? 0;
  }
}

/** `throw defer(err, { delayMs })`: see Deferral. Throws RangeError on a negative delay or a jitter outside 0..1. */
export function defer(reason: unknown, opts: { delayMs: number; jitter?: number }): Deferral {
  return new Deferral(reason, opts);
}
