import { ErrorCode, FleetError, isFleetError } from '@wallet-fleet/contracts';

// SQLSTATE classes and codes after which the same statement can succeed later: connection
// exceptions (08), serialization failure and deadlock (40001, 40P01), operator intervention
// (57P01-57P03: shutdown, crash recovery), insufficient resources (53).
const TRANSIENT_SQLSTATE = /^(08...|40001|40P01|57P0[123]|53...)$/;
const TRANSIENT_NODE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * A database failure as a FleetError: transient ones are `UNAVAILABLE` (retryable), everything
 * else `INTERNAL` (not retried: retrying a bug only repeats it). The driver's text is kept short and
 * never includes the statement's parameters.
 */
export function databaseError(e: unknown): FleetError {
  if (isFleetError(e)) return e;
  const code = (e as { code?: unknown })?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof code === 'string' && (TRANSIENT_SQLSTATE.test(code) || TRANSIENT_NODE.has(code))) {
    return new FleetError(ErrorCode.UNAVAILABLE, `database unavailable: ${message}`, { retryable: true, cause: e });
  }
  if (/timeout|terminated|Connection terminated|not queryable|Client has encountered a connection error/i.test(message)) {
    return new FleetError(ErrorCode.UNAVAILABLE, `database unavailable: ${message}`, { retryable: true, cause: e });
  }
  return new FleetError(ErrorCode.INTERNAL, `database error${typeof code === 'string' ? ` ${code}` : ''}`, { cause: e });
}

/**
 * Runs one store operation and translates what the database threw (see `databaseError`); a
 * FleetError thrown inside (by a caller's transaction body) passes unchanged. Stores wrap every
 * public method in this, so handlers never see a driver error and never translate one.
 * @throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL`.
 */
export async function withDatabaseErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw databaseError(e);
  }
}
