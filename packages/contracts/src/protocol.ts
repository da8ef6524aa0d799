import { z } from 'zod';
import { ErrorBody } from './errors.js';

/** The two public exchanges (topic, durable). Their names are contracts. */
export const Exchanges = {
  /** Requests: routing key = operation name, reply on `reply_to` with the same `correlation_id`. */
  commands: 'wallet.commands',
  /** Events: routing key = event name. */
  events: 'wallet.events',
} as const;

/** RabbitMQ's direct reply-to pseudo queue. */
export const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

/** Headers the fleet reads and writes. Unknown headers are carried along untouched. */
export const Headers = {
  /** W3C trace context, https://www.w3.org/TR/trace-context/ */
  traceparent: 'traceparent',
  /** Absolute deadline (epoch ms) of a request; past it the request is not processed. */
  deadline: 'x-deadline',
  /** 1-based delivery attempt of a retried message. */
  attempt: 'x-attempt',
  /** On dead-lettered messages: why (`validation`, `malformed_json`, `non_retryable`, `attempts_exhausted`, ...). */
  deathReason: 'x-death-reason',
  /** On dead-lettered messages: the last error code and message. */
  errorCode: 'x-error-code',
  errorMessage: 'x-error-message',
  /** On retried and dead-lettered messages: JSON array of `{attempt, code, message, at}`. */
  errorHistory: 'x-error-history',
  /** The queue a dead-lettered or retried message came from, and its original routing key. */
  originalQueue: 'x-original-queue',
  originalRoutingKey: 'x-original-routing-key',
  originalExchange: 'x-original-exchange',
} as const;

/** Body of a reply: `{ok:true,result}` or `{ok:false,error:{code,message,retryable}}`. */
export function replySchema<T extends z.ZodType>(result: T) {
  return z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), result }), z.object({ ok: z.literal(false), error: ErrorBody })]);
}
export const AnyReply = replySchema(z.unknown());
export type Reply<T> = { ok: true; result: T } | { ok: false; error: ErrorBody };
