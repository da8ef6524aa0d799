#!/usr/bin/env node
// Sends one request to the fleet and prints the reply: the smallest client of the message API.
//
//   node scripts/call.mjs <operation> ['<json body>'] [--get <path>]
//   node scripts/call.mjs --help          every operation of docs/asyncapi.json with its summary
//   node scripts/call.mjs wallet.management.create '{"userId":"alice","chain":"SOL"}'
//   WALLET=$(node scripts/call.mjs wallet.management.create '{"userId":"alice","chain":"SOL"}' --get result.walletId)
//   node scripts/call.mjs wallet.transaction.transfer "{\"userId\":\"alice\",\"walletId\":\"$WALLET\",\"asset\":{\"type\":\"native\"},\"recipient\":\"$BOB\",\"amount\":\"1000\",\"idempotencyKey\":\"pay-1\"}"
//     (tokens: "asset":{"type":"token","mint":"<SPL mint>"} from a SOL wallet, {"type":"token","contract":"0x…"} from an ETH one)
//
// Plain amqplib, as any other client would do it: publish to the topic exchange wallet.commands with
// the operation as routing key, reply_to = RabbitMQ's direct reply-to, a correlation id, mandatory
// (an operation no service is bound for comes back at once instead of vanishing) and an x-deadline
// header at the timeout (a request nobody answers in time is dropped unprocessed, not run later behind
// our back; not `expiration`, which makes the broker dead-letter it into the service's DLQ).
// Prints the reply JSON on stdout. Exit 0 on {ok:true}, 1 on {ok:false}, no reply, unroutable or a
// broker error (connection problems are named: nothing listening, credentials refused, no such
// vhost), 2 on bad usage. With --get a.b only that value of an {ok:true} reply is printed (strings
// without quotes), for shell variables; an {ok:false} reply is still printed whole.
//
// Environment: AMQP_URL (default: the local broker as the backend, ops or approver user, whichever the
// operation allows), CALL_AS (the local broker as this user instead, e.g. CALL_AS=approver-1 for one
// of the development approvers of scripts/dev-approvers.mjs), CALL_TIMEOUT_MS (default 10000).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokerPassword } from './dev-approvers.mjs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// scripts/ has no dependencies of its own: borrow the messaging package's amqplib.
const amqp = createRequire(join(repoRoot, 'packages', 'messaging', 'package.json'))('amqplib');

const EXCHANGE = 'wallet.commands';
const REPLY_TO = 'amq.rabbitmq.reply-to';

const USAGE = `usage: node scripts/call.mjs <operation> ['<json body>'] [--get <path>]
  e.g. node scripts/call.mjs wallet.audit.query '{"limit":5}'
       node scripts/call.mjs --help      (every operation)`;

/** @param {string} problem @returns {never} */
function usage(problem) {
  process.stderr.write(`call: ${problem}\n${USAGE}\n`);
  process.exit(2);
}

/**
 * The operations of the message API as docs/asyncapi.json (generated from the catalogue in
 * packages/contracts) describes them: readable before anything is built.
 * @returns {Array<{ name: string, summary: string, errors: string[] }>}
 */
function catalogue() {
  /** @type {{ operations: Record<string, { action: string, title: string, summary: string, 'x-errors'?: string[] }> }} */
  const doc = JSON.parse(readFileSync(join(repoRoot, 'docs', 'asyncapi.json'), 'utf8'));
  return Object.values(doc.operations)
    .filter((op) => op.action === 'send')
    .map((op) => ({ name: op.title, summary: op.summary, errors: op['x-errors'] ?? [] }));
}

function help() {
  const ops = catalogue();
  const width = Math.max(...ops.map((op) => op.name.length));
  const lines = [
    'Sends one request to the fleet (RabbitMQ, exchange wallet.commands) and prints the reply.',
    '',
    USAGE,
    '',
    'Operations (request and reply schemas and error codes: docs/asyncapi.json):',
    ...ops.map((op) => `  ${op.name.padEnd(width)}  ${op.summary}`),
    '',
    'Exit 0 on {"ok":true}, 1 on {"ok":false}, no reply, unroutable or a broker problem, 2 on bad usage.',
    'Environment: AMQP_URL (default: the local broker as user backend, ops or approver, whichever the operation allows),',
    '  CALL_AS (the local broker as this user, e.g. CALL_AS=approver-1), CALL_TIMEOUT_MS (default 10000).',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  process.exit(0);
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) help();
const getAt = argv.indexOf('--get');
const getPath = getAt >= 0 ? argv.splice(getAt, 2)[1] : undefined;
if (getAt >= 0 && !getPath) usage('--get needs a path, e.g. --get result.walletId');
const [operation, bodyText = '{}'] = argv;
if (!operation || operation.startsWith('-')) usage('missing operation');
let body;
try {
  body = JSON.parse(bodyText);
} catch (e) {
  usage(`the body is not JSON: ${/** @type {Error} */ (e).message}`);
}
/** The local broker as `user`, with the development password convention of scripts/broker-users.mjs. */
const localUrl = (user) => `amqp://${encodeURIComponent(user)}:${encodeURIComponent(brokerPassword(user))}@127.0.0.1:5672`;

// Without AMQP_URL or CALL_AS: the local broker as the external role (backend, then ops, then
// approver) that the operation's `x-callers` in docs/asyncapi.json allow, with the development
// password convention of scripts/broker-users.mjs (BROKER_PASSWORD_<ROLE>, else the role's name).
// Services answer FORBIDDEN to a caller the catalogue does not name.
function defaultUrl(op) {
  let callers = [];
  try {
    const doc = JSON.parse(readFileSync(join(repoRoot, 'docs', 'asyncapi.json'), 'utf8'));
    callers = Object.values(doc.operations).find((o) => o.title === op)?.['x-callers'] ?? [];
  } catch {
    // no document: fall through to guest
  }
  const role = ['backend', 'ops', 'approver'].find((r) => callers.includes(r));
  return role ? localUrl(role) : 'amqp://guest:guest@127.0.0.1:5672';
}
const url = process.env.AMQP_URL || (process.env.CALL_AS ? localUrl(process.env.CALL_AS) : defaultUrl(operation));
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

/**
 * What went wrong when connecting, in words: amqplib's own text for a missing vhost is
 * `Expected ConnectionOpenOk; got <ConnectionClose channel:0>`, which names neither.
 * @param {Error & { code?: string }} e
 */
function connectProblem(e) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return `AMQP_URL is not a URL (${e.message})`;
  }
  const where = `${u.hostname}:${u.port || (u.protocol === 'amqps:' ? 5671 : 5672)}`;
  const vhost = u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : '/';
  const user = decodeURIComponent(u.username || 'guest');
  if (e.code === 'ECONNREFUSED') return `nothing listens at ${where} (is RabbitMQ running? bash scripts/setup.sh starts a local one)`;
  if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') return `no such host ${u.hostname}`;
  if (e.code === 'ETIMEDOUT' || /timeout/i.test(e.message)) return `no answer from ${where} within ${timeoutMs} ms`;
  if (/ACCESS.REFUSED/.test(e.message)) return `the broker refused the credentials of user ${JSON.stringify(user)} (check the user and password in AMQP_URL)`;
  if (/ConnectionOpenOk|NOT_ALLOWED/.test(e.message)) {
    return `the broker refused to open vhost ${JSON.stringify(vhost)}: it does not exist or user ${JSON.stringify(user)} may not use it (the vhost is the path of AMQP_URL; a local fleet uses the default vhost "/", i.e. no path)`;
  }
  return e.message;
}

try {
  // noDelay: without it Nagle and delayed ACKs add ~40 ms to every round trip.
  conn = await amqp.connect(url, { noDelay: true, timeout: timeoutMs });
} catch (e) {
  await finish(1, undefined, `cannot connect to RabbitMQ at ${shownUrl}: ${connectProblem(/** @type {Error} */ (e))}`);
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
  headers: { 'x-deadline': Date.now() + timeoutMs },
  contentType: 'application/json',
  timestamp: Math.floor(Date.now() / 1000),
  // The broker user this connection logs in as: services answer FORBIDDEN to a request without it.
  userId: decodeURIComponent(new URL(url).username) || 'guest',
});
try {
  await ch.waitForConfirms();
} catch (e) {
  clearTimeout(timer);
  await finish(1, undefined, `the broker refused the request: ${/** @type {Error} */ (e).message}`);
}
if (returned) {
  clearTimeout(timer);
  const known = catalogue().some((op) => op.name === operation);
  const hint = known ? 'is the service that owns it running?' : 'it is not an operation of docs/asyncapi.json either: see --help';
  await finish(1, undefined, `unroutable: no service is bound for ${operation} on ${EXCHANGE} (${hint})`);
}
