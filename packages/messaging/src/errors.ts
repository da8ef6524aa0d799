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
