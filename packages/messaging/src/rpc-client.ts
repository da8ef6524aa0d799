import { randomUUID } from 'node:crypto';
import {
  AnyReply,
  DIRECT_REPLY_TO,
  ErrorCode,
  Exchanges,
  FleetError,
  Headers,
  fieldErrors,
  operations,
  type OperationName,
  type RequestOf,
  type ResultOf,
} from '@wallet-fleet/contracts';
import type { ConsumeMessage } from 'amqplib';
import { validationFailed } from './errors.js';
import { CORRELATION_HEADER, outgoingTrace } from './headers.js';
import type { Publisher } from './publisher.js';

interface PendingCall {
  op: OperationName;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * Request/response over RabbitMQ direct reply-to. Replies arrive on the publisher's channel
 * (direct reply-to requires the consumer and the publisher to be the same channel), matched by
 * the per-call `correlation_id`; the work context's correlation id travels in `x-correlation-id`
 * so that two concurrent calls of one handler never share a reply key.
 */
export class RpcClient {
  private readonly pending = new Map<string, PendingCall>();

  /**
   * Rejects VALIDATION_FAILED (body, before sending), UNAVAILABLE (not connected, or the
   * connection dropped while waiting), UNROUTABLE (no queue bound), FORBIDDEN (the broker refused
   * the publish: no permission for this operation), TIMEOUT (no reply in time), or the handler's
   * FleetError from an `{ok:false}` reply.
   */
  async request<Op extends OperationName>(
    publisherOf: () => Publisher,
    op: Op,
    body: RequestOf<Op>,
    opts: { timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<ResultOf<Op>> {
    const spec = operations[op];
    if (!spec) throw new FleetError(ErrorCode.UNKNOWN_OPERATION, `unknown operation ${String(op)}`);
    const checked = spec.request.safeParse(body);
    if (!checked.success) throw validationFailed(fieldErrors(checked.error));

    // Validation comes first: a bad body is the caller's bug whether or not we are connected.
    const publisher = publisherOf();
    const timeoutMs = opts.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const callId = randomUUID();
    const trace = outgoingTrace(callId);
    const deadline = Date.now() + timeoutMs;
    const result = new Promise<ResultOf<Op>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(callId);
        reject(new FleetError(ErrorCode.TIMEOUT, `no reply to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(callId, { op, resolve: resolve as (v: unknown) => void, reject, timer });
    });
    // The body as given (not the parsed output): the server parses it again with the same schema.
    publisher
      .publish(Exchanges.commands, op, Buffer.from(JSON.stringify(body)), {
        mandatory: true,
        messageId: randomUUID(),
        correlationId: callId,
        replyTo: DIRECT_REPLY_TO,
        // No `expiration`: the broker would dead-letter an expired request into the queue's DLQ,
        // burying real poison messages. The consumer drops (and counts) a request past x-deadline.
        contentType: 'application/json',
        persistent: false,
        timestamp: Math.floor(Date.now() / 1000),
        headers: {
          ...opts.headers,
          [CORRELATION_HEADER]: trace.correlationId,
          [Headers.traceparent]: trace.traceparent,
          [Headers.deadline]: deadline,
        },
      })
      .catch((e: Error) => this.settle(callId, (call) => call.reject(e)));
    return result;
  }

  /** The direct reply-to consumer (noAck). Replies nobody waits for (late, foreign) are dropped. */
  onReply = (msg: ConsumeMessage | null): void => {
    if (!msg) return;
    const id = msg.properties.correlationId;
    if (typeof id !== 'string') return;
    this.settle(id, (call) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(msg.content.toString('utf8'));
      } catch {
        return call.reject(new FleetError(ErrorCode.INTERNAL, `malformed reply to ${call.op}`));
      }
      const reply = AnyReply.safeParse(parsed);
      if (!reply.success) return call.reject(new FleetError(ErrorCode.INTERNAL, `reply to ${call.op} is not a reply`));
      if (!reply.data.ok) return call.reject(FleetError.fromBody(reply.data.error));
      const result = operations[call.op].result.safeParse(reply.data.result);
      if (!result.success) {
        return call.reject(new FleetError(ErrorCode.INTERNAL, `result of ${call.op} failed validation`, { details: { fields: fieldErrors(result.error) } }));
      }
      call.resolve(result.data);
    });
  };

  /** Fails every waiting call (connection lost: the replies can never reach a new channel). */
  failAll(err: Error): void {
    for (const id of [...this.pending.keys()]) this.settle(id, (call) => call.reject(err));
  }

  /**
   * The reply channel closed: fails the calls waiting now (their replies went to it) once this turn
   * of the event loop is over, so that a call whose own publish the broker refused (the reason the
   * channel closed) settles first with that refusal (FORBIDDEN, NOT_FOUND) rather than `err`.
   */
  failWaitingAfterTurn(err: Error): void {
    const ids = [...this.pending.keys()];
    setImmediate(() => {
      for (const id of ids) this.settle(id, (call) => call.reject(err));
    });
  }

  get inFlight(): number {
    return this.pending.size;
  }

  private settle(id: string, fn: (call: PendingCall) => void): void {
    const call = this.pending.get(id);
    if (!call) return;
    this.pending.delete(id);
    clearTimeout(call.timer);
    fn(call);
  }
}
