import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import CircuitBreaker from 'opossum';
import { Counter, Gauge, register as globalRegistry, type Registry } from 'prom-client';
import { getOrCreateMetric } from './metrics.js';

export interface BreakerOptions {
  /** A call running longer than this rejects with `UNAVAILABLE` and counts as a failure. */
  timeoutMs: number;
  /** Failure percentage (over the rolling 10 s window) at or above which the breaker opens. Default 50. */
  errorThresholdPercentage?: number;
  /** How long the breaker stays open before it lets one trial call through (half-open). Default 5000. */
  resetTimeoutMs?: number;
  /** Calls in the window before the percentage is judged at all. Default 5. */
  volumeThreshold?: number;
  /**
   * Whether an error means the dependency is failing. Default: everything except a `FleetError`
   * that is not retryable (a validation error or a "not found" is an answer, not an outage).
   * Timeouts count as failures whatever this says.
   */
  isFailure?: (err: unknown) => boolean;
}

/** The one place the fleet's breaker defaults live: callers pass only what differs. */
const BREAKER_DEFAULTS = { errorThresholdPercentage: 50, resetTimeoutMs: 5000, volumeThreshold: 5 } as const;

/**
 * The breaker refused a call without trying it (open, or shut down): the dependency was not asked
 * at all, so nothing happened there. A retryable `UNAVAILABLE`; tell it apart with `isBreakerOpen`.
 */
export class BreakerOpenError extends FleetError {
  readonly breaker: string;
  constructor(breaker: string, cause?: unknown) {
    super(ErrorCode.UNAVAILABLE, `${breaker} is unavailable (circuit open)`, { retryable: true, ...(cause === undefined ? {} : { cause }) });
    this.name = 'BreakerOpenError';
    this.breaker = breaker;
  }
}

/** Whether `e` is a call an open breaker refused (not one that reached the dependency and failed). */
export function isBreakerOpen(e: unknown): e is BreakerOpenError {
  return e instanceof BreakerOpenError;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface Breaker<A extends unknown[], R> {
  readonly name: string;
  /**
   * Calls the wrapped function through the breaker.
   * @throws BreakerOpenError (`UNAVAILABLE`, retryable) when the breaker is open, without calling;
   *   FleetError `UNAVAILABLE` (retryable) when the call timed out;
   *   otherwise whatever the function threw, unchanged.
   */
  fire(...args: A): Promise<R>;
  state(): BreakerState;
  /** Stops the breaker's timers; later calls reject with `UNAVAILABLE`. */
  shutdown(): void;
}

const STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

const defaultIsFailure = (err: unknown) => !(err instanceof FleetError && !err.retryable);

/**
 * A circuit breaker (opossum) around `fn`. Metrics in `registry` (default: prom-client's global one):
 * - `breaker_state{name}`: 0 closed, 1 half-open, 2 open;
 * - `breaker_calls_total{name,outcome}`: outcome `success`, `failure`, `timeout`, `rejected`
 *   (open breaker), or `ignored` (an error that `isFailure` says is not an outage).
 */
export function createBreaker<A extends unknown[], R>(
  name: string,
  fn: (...args: A) => Promise<R>,
  opts: BreakerOptions,
  registry: Registry = globalRegistry,
): Breaker<A, R> {
  const isFailure = opts.isFailure ?? defaultIsFailure;
  const { errorThresholdPercentage, resetTimeoutMs, volumeThreshold } = { ...BREAKER_DEFAULTS, ...definedOnly(opts) };
  // One metric object per registry and name: several breakers share the series, told apart by `name`.
  const stateGauge = getOrCreateMetric(
    registry,
    'breaker_state',
    () => new Gauge({ name: 'breaker_state', help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open', labelNames: ['name'], registers: [registry] }),
  );
  const calls = getOrCreateMetric(
    registry,
    'breaker_calls_total',
    () =>
      new Counter({
        name: 'breaker_calls_total',
        help: 'Calls through a circuit breaker by outcome',
        labelNames: ['name', 'outcome'],
        registers: [registry],
      }),
  );

  const cb = new CircuitBreaker(fn, {
    name,
    timeout: opts.timeoutMs,
    errorThresholdPercentage,
    resetTimeout: resetTimeoutMs,
    volumeThreshold,
    // opossum's filter means "do not count"; a timeout is always counted, or a hung dependency
    // with a lenient isFailure would never trip the breaker.
    errorFilter: (err: unknown) => !isTimeout(err) && !isFailure(err),
  });
  let state: BreakerState = 'closed';
  const setState = (s: BreakerState) => {
    state = s;
    stateGauge.set({ name }, STATE_VALUE[s]);
  };
  setState('closed');
  cb.on('open', () => setState('open'));
  cb.on('halfOpen', () => setState('half-open'));
  cb.on('close', () => setState('closed'));
  for (const outcome of ['success', 'failure', 'timeout', 'rejected', 'ignored']) calls.inc({ name, outcome }, 0);

  return {
    name,
    state: () => state,
    shutdown: () => cb.shutdown(),
    async fire(...args: A): Promise<R> {
      try {
        const result = (await cb.fire(...args)) as R;
        calls.inc({ name, outcome: 'success' });
        return result;
      } catch (err) {
        const code = (err as { code?: unknown })?.code;
        if (code === 'EOPENBREAKER' || code === 'ESHUTDOWN') {
          calls.inc({ name, outcome: 'rejected' });
          throw new BreakerOpenError(name, err);
        }
        if (isTimeout(err)) {
          calls.inc({ name, outcome: 'timeout' });
          throw new FleetError(ErrorCode.UNAVAILABLE, `${name} timed out after ${opts.timeoutMs} ms`, { cause: err });
        }
        calls.inc({ name, outcome: isFailure(err) ? 'failure' : 'ignored' });
        throw err;
      }
    },
  };
}

// opossum's own timeout error: a plain Error with code ETIMEDOUT. A socket's ETIMEDOUT thrown by fn
// looks the same and is a failure of the dependency all the same.
function isTimeout(err: unknown): boolean {
  return (err as { code?: unknown })?.code === 'ETIMEDOUT';
}

// `{ resetTimeoutMs: undefined }` (an optional config value left unset) must not erase a default.
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
