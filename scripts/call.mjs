#!/usr/bin/env node
// Sends one request to the fleet and prints the reply: the smallest client of the message API.
//
//   node scripts/call.mjs <operation> ['<json body>'] [--get <path>]
//   node scripts/call.mjs wallet.management.create '{"userId":"alice","chain":"SOL"}'
//   WALLET=$(node scripts/call.mjs wallet.management.create '{"userId":"alice","chain":"SOL"}' --get result.walletId)
//
// Plain amqplib, as any other client would do it: publish to the topic exchange wallet.commands with
// the operation as routing key, reply_to = RabbitMQ's direct reply-to, a correlation id, mandatory
// (an operation no service is bound for comes back at once instead of vanishing) and an expiration
// equal to the timeout (a request nobody answers in time is not processed later behind our back).
// Prints the reply JSON on stdout. Exit 0 on {ok:true}, 1 on {ok:false}, no reply, unroutable or a
// broker error, 2 on bad usage. With --get a.b only that value of an {ok:true} reply is printed (strings
// without quotes), for shell variables; an {ok:false} reply is still printed whole.
//
// Environment: AMQP_URL (default: the local broker as the backend or ops user, whichever the operation
// allows), CALL_TIMEOUT_MS (default 10000).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// scripts/ has no dependencies of its own: borrow the messaging package's amqplib.
const amqp = createRequire(join(repoRoot, 'packages', 'messaging', 'package.json'))('amqplib');

const EXCHANGE = 'wallet.commands';
const REPLY_TO = 'amq.rabbitmq.reply-to';

function usage(problem) {
  process.stderr.write(`call: ${problem}\nusage: node scripts/call.mjs <operation> ['<json body>'] [--get <path>]\n  e.g. node scripts/call.mjs wallet.audit.query '{"limit":5}'\n`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const getAt = argv.indexOf('--get');
const getPath = getAt >= 0 ? argv.splice(getAt, 2)[1] : undefined;
if (getAt >= 0 && !getPath) usage('--get needs a path, e.g. --get result.walletId');
const [operation, bodyText = '{}'] = argv;
if (!operation || operation.startsWith('-')) usage('missing operation');
let body;
try {
  body = JSON.parse(bodyText);
} catch (e) {
  usage(`the body is not JSON: ${e.message}`);
}
// Without AMQP_URL: the local broker as the external role (backend first, then ops) that the
// operation's `x-callers` in docs/asyncapi.json allow, with the development password convention of
// scripts/broker-users.mjs (BROKER_PASSWORD_<ROLE>, else the role's name). Services answer FORBIDDEN
// to a caller the catalogue does not name.
function defaultUrl(op) {
  let callers = [];
  try {
    const doc = JSON.parse(readFileSync(join(repoRoot, 'docs', 'asyncapi.json'), 'utf8'));
    callers = Object.values(doc.operations).find((o) => o.title === op)?.['x-callers'] ?? [];
  } catch {
    // no document: fall through to guest
  }
  const role = ['backend', 'ops'].find((r) => callers.includes(r));
  if (!role) return 'amqp://guest:guest@127.0.0.1:5672';
  const password = process.env[`BROKER_PASSWORD_${role.toUpperCase()}`] || role;
  return `amqp://${encodeURIComponent(role)}:${encodeURIComponent(password)}@127.0.0.1:5672`;
}
const url = process.env.AMQP_URL || defaultUrl(operation);
const timeoutMs = Number(process.env.CALL_TIMEOUT_MS || 10_000);
if (!Number.isInteger(timeoutMs) || timeoutMs < 1) usage(`CALL_TIMEOUT_MS must be a positive integer, got ${process.env.CALL_TIMEOUT_MS}`);
const shownUrl = (() => {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable AMQP_URL)';
  }
})();

let conn;
async function finish(code, out, err) {
  if (out !== undefined) process.stdout.write(`${out}\n`);
  if (err !== undefined) process.stderr.write(`call: ${err}\n`);
  process.exitCode = code;
  try {
    await conn?.close();
  } catch {
    // already closed (e.g. after a channel error took the connection with it)
  }
  process.exit(code);
}

try {
  // noDelay: without it Nagle and delayed ACKs add ~40 ms to every round trip.
  conn = await amqp.connect(url, { noDelay: true });
} catch (e) {
  await finish(1, undefined, `cannot connect to RabbitMQ at ${shownUrl}: ${e.message}`);
}
conn.on('error', () => {});
// A confirm channel: RabbitMQ sends basic.return before the confirm, so once the publish is
// confirmed we know for sure whether it was routed.
const ch = await conn.createConfirmChannel();
ch.on('error', (e) => {
  const hint = /NOT_FOUND.*exchange/.test(e.message) ? ` (no service has declared ${EXCHANGE} in this vhost: is the fleet running?)` : '';
  void finish(1, undefined, `${e.message}${hint}`);
});

const correlationId = randomUUID();
let returned = false;
ch.on('return', () => {
  returned = true;
});
const timer = setTimeout(() => void finish(1, undefined, `no reply to ${operation} within ${timeoutMs} ms (correlation id ${correlationId})`), timeoutMs);
// Direct reply-to: consume (no-ack) before publishing, on the same channel.
await ch.consume(
  REPLY_TO,
  (msg) => {
    if (!msg || msg.properties.correlationId !== correlationId) return;
    clearTimeout(timer);
    let reply;
    try {
      reply = JSON.parse(msg.content.toString('utf8'));
    } catch {
      void finish(1, msg.content.toString('utf8'), 'the reply is not JSON');
      return;
    }
    if (reply?.ok === true && getPath !== undefined) {
      const value = getPath.split('.').reduce((o, k) => (o === null || o === undefined ? undefined : o[k]), reply);
      if (value === undefined) void finish(1, JSON.stringify(reply, null, 2), `the reply has no ${getPath}`);
      else void finish(0, typeof value === 'string' ? value : JSON.stringify(value));
      return;
    }
    void finish(reply?.ok === true ? 0 : 1, JSON.stringify(reply, null, 2));
  },
  { noAck: true },
);
ch.publish(EXCHANGE, operation, Buffer.from(JSON.stringify(body)), {
  correlationId,
  messageId: randomUUID(),
  replyTo: REPLY_TO,
  mandatory: true,
  expiration: String(timeoutMs),
  contentType: 'application/json',
  timestamp: Math.floor(Date.now() / 1000),
  // The broker user this connection logs in as: services answer FORBIDDEN to a request without it.
  userId: decodeURIComponent(new URL(url).username) || 'guest',
});
try {
  await ch.waitForConfirms();
} catch (e) {
  clearTimeout(timer);
  await finish(1, undefined, `the broker refused the request: ${e.message}`);
}
if (returned) {
  clearTimeout(timer);
  await finish(1, undefined, `unroutable: no service is bound for ${operation} on ${EXCHANGE} (is the service that owns it running?)`);
}
