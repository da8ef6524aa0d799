import { z } from 'zod';
import { SERVICE_IN_KEY, events, externalRoles, fleetServices, operations } from './catalogue.js';
import { errorCodes } from './errors.js';
import { DIRECT_REPLY_TO, Exchanges, Headers, replySchema } from './protocol.js';

const id = (key: string) => key.replace(/#/g, 'all').replace(/[^A-Za-z0-9]+/g, '_');
const schemaOf = (s: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function exchangeBinding(name: string) {
  return {
    amqp: {
      is: 'routingKey',
      exchange: { name, type: 'topic', durable: true, autoDelete: false, vhost: '/' },
      bindingVersion: '0.3.0',
    },
  };
}

const list = (xs: readonly string[]) => xs.map((x) => (x === SERVICE_IN_KEY ? 'the service named in the routing key' : `\`${x}\``)).join(', ');

const correlationId = { location: '$message.header#/correlation_id', description: 'AMQP property correlation_id' };

/**
 * The AsyncAPI 3 document of the public message API, built from the zod schemas of this package
 * (never written by hand). `pnpm asyncapi` writes it to `docs/asyncapi.json`; a test fails when
 * the committed file is stale.
 */
export function buildAsyncApi(version: string): Record<string, unknown> {
  const channels: Record<string, unknown> = {};
  const ops: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};

  channels.replies = {
    address: null,
    description: `Replies, on the caller's \`reply_to\` queue (RabbitMQ direct reply-to \`${DIRECT_REPLY_TO}\` works). Body \`{"ok":true,"result":…}\` or \`{"ok":false,"error":{"code","message","retryable"}}\`; same \`correlation_id\` as the request.`,
    messages: {} as Record<string, unknown>,
  };
  const replyMessages = (channels.replies as { messages: Record<string, unknown> }).messages;

  for (const [name, op] of Object.entries(operations)) {
    const key = id(name);
    messages[`${key}_request`] = {
      name: `${name} request`,
      title: name,
      summary: op.summary,
      contentType: 'application/json',
      correlationId,
      payload: schemaOf(op.request, 'input'),
    };
    messages[`${key}_reply`] = {
      name: `${name} reply`,
      contentType: 'application/json',
      correlationId,
      payload: schemaOf(replySchema(op.result), 'output'),
    };
    replyMessages[`${key}_reply`] = { $ref: `#/components/messages/${key}_reply` };
    channels[key] = {
      address: name,
      description: `Requests of \`${name}\` on exchange \`${Exchanges.commands}\` (consumed by the ${op.owner} service). Callers: ${list(op.callers)}; any other caller is answered \`FORBIDDEN\`.`,
      messages: { request: { $ref: `#/components/messages/${key}_request` } },
      bindings: exchangeBinding(Exchanges.commands),
    };
    ops[key] = {
      action: 'send',
      title: name,
      summary: op.summary,
      description: `Error codes of its \`{"ok":false}\` replies: ${op.errors.map((c) => `\`${c}\``).join(', ')}.`,
      // The same list for tools (a specification extension, as AsyncAPI allows on an operation).
      'x-errors': [...op.errors],
      'x-callers': [...op.callers],
      'x-idempotent': op.idempotent,
      channel: { $ref: `#/channels/${key}` },
      messages: [{ $ref: `#/channels/${key}/messages/request` }],
      bindings: { amqp: { mandatory: true, deliveryMode: 2, bindingVersion: '0.3.0' } },
      reply: {
        address: { location: '$message.header#/reply_to', description: 'AMQP property reply_to' },
        channel: { $ref: '#/channels/replies' },
        messages: [{ $ref: `#/channels/replies/messages/${key}_reply` }],
      },
    };
  }

  for (const [name, ev] of Object.entries(events)) {
    const key = `event_${id(name)}`;
    messages[key] = {
      name,
      title: name,
      summary: ev.summary,
      contentType: 'application/json',
      payload: schemaOf(ev.payload, 'output'),
    };
    channels[key] = {
      address: name,
      description: `Event \`${name}\` on exchange \`${Exchanges.events}\`. Producers: ${list(ev.producers)}; the broker refuses the key to anyone else, and a copy from another producer is dead-lettered (\`forbidden_producer\`).`,
      messages: { event: { $ref: `#/components/messages/${key}` } },
      bindings: exchangeBinding(Exchanges.events),
    };
    ops[key] = {
      action: 'receive',
      title: name,
      summary: `Subscribe to ${name}`,
      'x-producers': [...ev.producers],
      channel: { $ref: `#/channels/${key}` },
      messages: [{ $ref: `#/channels/${key}/messages/event` }],
    };
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'wallet-fleet message API',
      version,
      description: [
        'Requests go to the topic exchange `wallet.commands` with the operation name as routing key, a JSON body,',
        'and the AMQP properties `correlation_id` and `reply_to`; publish them `mandatory` to learn at once when no',
        'service is bound. A request without `reply_to` is processed and its reply dropped. A request whose',
        '`x-deadline` header (epoch ms) passed is dropped unprocessed; set no `expiration` (an expired request is dead-lettered).',
        'Events go to the topic exchange `wallet.events`. Optional headers: `traceparent` (W3C trace context).',
        `Every client connects as a broker user holding one role: a service of the fleet (${fleetServices.map((r) => `\`${r}\``).join(', ')})`,
        `or an external role (${externalRoles.map((r) => `\`${r}\``).join(', ')}); the deployment maps users to roles. Every message must carry`,
        "the AMQP property `user_id` (the connection's user; RabbitMQ refuses any other value). Each operation names its",
        'callers (`x-callers`) and each event its producers (`x-producers`): a request from another role is answered',
        '`FORBIDDEN`, an event from another producer is dead-lettered, and one without `user_id` counts as neither.',
        `Error codes: ${errorCodes.map((c) => `\`${c}\``).join(', ')}. Dead-lettered messages carry`,
        `\`${Headers.deathReason}\`, \`${Headers.errorCode}\`, \`${Headers.errorMessage}\` and \`${Headers.errorHistory}\`.`,
      ].join(' '),
      license: { name: 'Apache-2.0' },
    },
    defaultContentType: 'application/json',
    servers: {
      local: { host: '127.0.0.1:5672', protocol: 'amqp', protocolVersion: '0.9.1', description: 'RabbitMQ of a local fleet' },
    },
    channels,
    operations: ops,
    components: { messages },
  };
}
