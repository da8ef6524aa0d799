import type { FieldError } from '@wallet-fleet/contracts';
import { validationFailed } from './errors.js';
import type { PublishProps } from './publisher.js';

/** AMQP short strings (exchange, routing key, ids, reply-to, type, app id) hold at most 255 bytes. */
const SHORTSTR_MAX = 255;
/** RabbitMQ keeps a per-message TTL in an unsigned 32-bit field. */
const EXPIRATION_MAX = 2 ** 32 - 1;

const SHORT_PROPS = ['messageId', 'correlationId', 'replyTo', 'contentType', 'type', 'appId'] as const;

/**
 * Checks what becomes an AMQP property or frame field before it reaches the channel. The broker
 * answers a malformed property (`expiration: "1500.5"`) by closing the channel the message came
 * on, which fails every other message in flight there; refusing it here fails only that message.
 * Throws VALIDATION_FAILED naming the field.
 */
export function checkPublish(exchange: string, routingKey: string, props: PublishProps): void {
  const fields: FieldError[] = [];
  const short = (path: string, v: unknown) => {
    if (v === undefined) return;
    if (typeof v !== 'string') fields.push({ path, message: 'must be a string' });
    else if (Buffer.byteLength(v) > SHORTSTR_MAX) fields.push({ path, message: `must be at most ${SHORTSTR_MAX} bytes` });
  };
  short('exchange', exchange);
  short('routingKey', routingKey);
  for (const p of SHORT_PROPS) short(p, props[p]);
  if (props.expiration !== undefined) {
    const e = props.expiration;
    const ok = typeof e === 'number' ? Number.isInteger(e) && e >= 0 && e <= EXPIRATION_MAX : /^\d{1,10}$/.test(e) && Number(e) <= EXPIRATION_MAX;
    if (!ok) fields.push({ path: 'expiration', message: `must be a whole number of milliseconds in 0..${EXPIRATION_MAX}, got ${JSON.stringify(e)}` });
  }
  if (props.timestamp !== undefined && !(Number.isInteger(props.timestamp) && props.timestamp >= 0)) {
    fields.push({ path: 'timestamp', message: 'must be whole seconds since the epoch' });
  }
  if (fields.length > 0) throw validationFailed(fields);
}
