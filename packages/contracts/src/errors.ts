import { z } from 'zod';

/**
 * Error codes of the public API. A code is a contract: clients branch on it, so a code is never
 * renamed or re-purposed; new codes may be added.
 */
export const ErrorCode = {
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  NOT_FOUND: 'NOT_FOUND',
  WALLET_NOT_FOUND: 'WALLET_NOT_FOUND',
  INSUFFICIENT_FUNDS: 'INSUFFICIENT_FUNDS',
  INVALID_RECIPIENT: 'INVALID_RECIPIENT',
  SIGNING_FAILED: 'SIGNING_FAILED',
  SUBMISSION_FAILED: 'SUBMISSION_FAILED',
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  UNSUPPORTED_CHAIN: 'UNSUPPORTED_CHAIN',
  RATE_LIMITED: 'RATE_LIMITED',
  UNAVAILABLE: 'UNAVAILABLE',
  /** The request could not be routed to any consumer (no service bound to the operation). */
  UNROUTABLE: 'UNROUTABLE',
  /** No reply arrived before the caller's deadline; the request may or may not have been processed. */
  TIMEOUT: 'TIMEOUT',
  /** The operation name is not one this service handles. */
  UNKNOWN_OPERATION: 'UNKNOWN_OPERATION',
  /** The caller's role may not send this operation (catalogue `callers`; the broker user decides the role). */
  FORBIDDEN: 'FORBIDDEN',
  /** The signing policy refused the transaction; `details.rule` names the rule (and `details.scope` its scope). */
  POLICY_DENIED: 'POLICY_DENIED',
  /**
   * The request reached its service again after a delivery whose outcome nobody saw (a lost session,
   * a stop): it may have taken effect. Not run again, since the operation is not idempotent and the
   * request carries no idempotency key; ask for the state before deciding to send it again.
   */
  OUTCOME_UNKNOWN: 'OUTCOME_UNKNOWN',
  /**
   * The policy asks approvers to approve this transaction first: it is kept, nothing is signed;
   * `details.approvalId` names the request (`wallet.approval.*`), the same one when repeated.
   */
  APPROVAL_REQUIRED: 'APPROVAL_REQUIRED',
  /**
   * The approval request is no longer pending (`details.status`: expired, rejected, completed, failed).
   * Also the answer to a repeat of a request whose approval ended without a result (failed, rejected,
   * expired; `details.error` for a failed execution): that request will not be carried out.
   */
  APPROVAL_CLOSED: 'APPROVAL_CLOSED',
  INTERNAL: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
export const errorCodes = Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]];

/**
 * What a code means for a retry when the thrower does not say. Decided on purpose: an unknown
 * failure (`INTERNAL`) is not retried blindly, because for signing and money a blind retry can
 * double an effect; a handler that knows a retry is safe throws with `retryable: true`.
 */
const defaultRetryable: Readonly<Record<ErrorCode, boolean>> = {
  VALIDATION_FAILED: false,
  NOT_FOUND: false,
  WALLET_NOT_FOUND: false,
  INSUFFICIENT_FUNDS: false,
  INVALID_RECIPIENT: false,
  SIGNING_FAILED: false,
  SUBMISSION_FAILED: false,
  IDEMPOTENCY_CONFLICT: false,
  UNSUPPORTED_CHAIN: false,
  RATE_LIMITED: true,
  UNAVAILABLE: true,
  UNROUTABLE: true,
  TIMEOUT: true,
  UNKNOWN_OPERATION: false,
  FORBIDDEN: false,
  POLICY_DENIED: false,
  OUTCOME_UNKNOWN: false,
  APPROVAL_REQUIRED: false,
  APPROVAL_CLOSED: false,
  INTERNAL: false,
};

/** One field error of a VALIDATION_FAILED reply. `path` is dotted (`resource.id`, `items.0`). */
export const FieldError = z.object({ path: z.string(), message: z.string() });
export type FieldError = z.infer<typeof FieldError>;

/** The `error` object of a failed reply. */
export const ErrorBody = z.object({
  code: z.string().describe('One of the documented error codes (new codes may be added).'),
  message: z.string().max(1024),
  retryable: z.boolean(),
  details: z
    .object({ fields: z.array(FieldError).optional() })
    .catchall(z.unknown())
    .optional()
    .describe('Code-specific detail; VALIDATION_FAILED carries `fields`.'),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

const MAX_MESSAGE = 256;

/**
 * The one error type crossing our boundaries. `retryable` defaults per code (see
 * `defaultRetryable`). Messages are cut to 256 characters: remote error text is not trusted to be
 * short or free of noise.
 */
export class FleetError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;
  /**
   * For a retryable failure of a queued message: multiplies the queue's retry delays (first delay
   * and cap) for this failure, e.g. a chain RPC endpoint down waits longer than a transaction not
   * yet confirmed. Local to the process that throws it: never sent in a reply.
   */
  readonly retryDelayFactor: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryable?: boolean; details?: Record<string, unknown>; cause?: unknown; retryDelayFactor?: number } = {},
  ) {
    super(cleanMessage(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FleetError';
    this.code = code;
    this.retryable = options.retryable ?? defaultRetryable[code] ?? false;
    this.details = options.details;
    this.retryDelayFactor = options.retryDelayFactor;
  }

  static retryable(code: ErrorCode, message: string, details?: Record<string, unknown>): FleetError {
    return new FleetError(code, message, { retryable: true, ...(details ? { details } : {}) });
  }

  static nonRetryable(code: ErrorCode, message: string, details?: Record<string, unknown>): FleetError {
    return new FleetError(code, message, { retryable: false, ...(details ? { details } : {}) });
  }

  static validation(fields: FieldError[], message = describeFields(fields)): FleetError {
    return new FleetError(ErrorCode.VALIDATION_FAILED, message, { retryable: false, details: { fields } });
  }

  /** Rebuilds an error from a reply's `error` body (unknown codes are kept as they came). */
  static fromBody(body: ErrorBody): FleetError {
    return new FleetError(body.code as ErrorCode, body.message, {
      retryable: body.retryable,
      ...(body.details ? { details: body.details } : {}),
    });
  }

  toBody(): ErrorBody {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** Narrows `e` to a FleetError, optionally of one code. */
export function isFleetError<C extends ErrorCode>(e: unknown, code?: C): e is FleetError & { code: C } {
  return e instanceof FleetError && (code === undefined || e.code === code);
}

function describeFields(fields: FieldError[]): string {
  return fields.length === 0 ? 'invalid message' : `invalid ${fields.map((f) => `${f.path}: ${f.message}`).join('; ')}`;
}

/** Collapses whitespace and cuts to 256 characters. */
export function cleanMessage(message: string): string {
  const m = String(message).replace(/\s+/g, ' ').trim();
  return m.length > MAX_MESSAGE ? `${m.slice(0, MAX_MESSAGE - 1)}…` : m;
}

/** Field errors from a zod error, with dotted paths. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
}
