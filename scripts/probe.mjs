#!/usr/bin/env node
// Does a backing service answer? One small probe per protocol, no dependencies (setup runs it before
// `pnpm install` may have happened). Exit 0 = answers; 1 = does not answer (yet); other codes below.
//
//   node scripts/probe.mjs amqp <host> <port>        AMQP 0-9-1 handshake starts (connection.start)
//   node scripts/probe.mjs http <host> <port>        any HTTP response
//   node scripts/probe.mjs redis <host> <port>       PING answered (LOADING counts as not yet)
//   node scripts/probe.mjs tcp <host> <port>         the port accepts a connection (the KMS emulator's gRPC)
//   node scripts/probe.mjs jsonrpc <host> <port> <method> [expected result]
//                                                    a JSON-RPC call answers (with that result), e.g.
//                                                    getHealth ok (Solana), eth_chainId 0x7a69 (anvil)
//   node scripts/probe.mjs postgres <url>            the server accepts connections (not "starting up")
//   node scripts/probe.mjs postgres-db <url>         ... and the URL's database and user are usable:
//                                                    exit 3 = database missing, 4 = login refused
//
// A TCP connect alone is not enough: RabbitMQ and PostgreSQL open their ports while still booting.
import { connect } from 'node:net';

const TIMEOUT_MS = 2000;

function exchange(host, port, payload, isComplete) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let data = Buffer.alloc(0);
    const done = (err, value) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => done(new Error(`no answer from ${host}:${port} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]);
      if (isComplete(data)) done(undefined, data);
    });
    socket.on('error', (e) => done(e));
    socket.on('close', () => done(new Error(`connection to ${host}:${port} closed`)));
  });
}

async function amqp(host, port) {
  const reply = await exchange(host, port, Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'), (d) => d.length >= 1);
  // Frame type 1 (method) = connection.start; anything else is not a ready AMQP 0-9-1 broker.
  if (reply[0] !== 1) throw new Error(`${host}:${port} is not an AMQP 0-9-1 broker`);
}

async function http(host, port) {
  const res = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${port}/`, {
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  await res.arrayBuffer();
}

async function redis(host, port) {
  const reply = (await exchange(host, port, 'PING\r\n', (d) => d.includes('\r\n'))).toString('latin1');
  // NOAUTH: up, but protected by a password (the services bring it in REDIS_URL).
  if (!reply.startsWith('+PONG') && !reply.startsWith('-NOAUTH')) throw new Error(`redis: ${reply.trim()}`);
}

/**
 * Sends a startup message and reads the server's messages up to the verdict: ReadyForQuery ('Z': in),
 * an AuthenticationRequest other than Ok ('R' with a password method: up, the services bring the
 * password), or an ErrorResponse ('E'). Trust authentication answers AuthenticationOk *before* the
 * database is looked up, so stopping at the first 'R' would miss a missing database.
 */
async function postgresStartup(url) {
  const u = new URL(url);
  const user = decodeURIComponent(u.username) || 'postgres';
  const database = decodeURIComponent(u.pathname.slice(1)) || user;
  const params = Buffer.from(`user\0${user}\0database\0${database}\0\0`, 'utf8');
  const msg = Buffer.alloc(8 + params.length);
  msg.writeInt32BE(msg.length, 0);
  msg.writeInt32BE(196608, 4); // protocol 3.0
  params.copy(msg, 8);
  const host = u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(u.port || 5432);
  /** @type {Buffer | undefined} */
  let verdict;
  /** @param {Buffer} d */
  const complete = (d) => {
    for (let i = 0; i + 5 <= d.length; ) {
      const len = d.readInt32BE(i + 1);
      if (i + 1 + len > d.length) return false;
      const type = d[i];
      if (type === 0x5a || type === 0x45 || (type === 0x52 && d.readInt32BE(i + 5) !== 0)) {
        verdict = d.subarray(i, i + 1 + len);
        return true;
      }
      if (type !== 0x52 && type !== 0x53 && type !== 0x4b && type !== 0x4e) {
        verdict = d.subarray(i, i + 1 + len); // not a PostgreSQL startup conversation
        return true;
      }
      i += 1 + len;
    }
    return false;
  };
  await exchange(host, port, msg, complete);
  if (!verdict) throw new Error(`${host}:${port} closed the connection before answering`);
  if (verdict[0] === 0x5a || verdict[0] === 0x52) return { ok: true, database, user };
  if (verdict[0] !== 0x45) throw new Error(`${host}:${port} is not a PostgreSQL server`);
  /** @type {Record<string, string>} */
  const fields = {};
  for (let i = 5; i < verdict.length && verdict[i] !== 0; ) {
    const end = verdict.indexOf(0, i + 1);
    fields[String.fromCharCode(/** @type {number} */ (verdict[i]))] = verdict.toString('utf8', i + 1, end);
    i = end + 1;
  }
  return { ok: false, code: fields.C, message: fields.M, database, user };
}

async function postgres(url) {
  const r = await postgresStartup(url);
  // 57P03 cannot_connect_now: starting up, shutting down or in recovery.
  if (!r.ok && r.code === '57P03') throw new Error(r.message);
}

async function postgresDb(url) {
  const r = await postgresStartup(url);
  if (r.ok) return 0;
  if (r.code === '57P03') throw new Error(r.message);
  console.error(`postgres: ${r.message} (${r.code})`);
  if (r.code === '3D000') return 3; // invalid_catalog_name
  if (r.code?.startsWith('28')) return 4; // invalid authorization / password
  return 2;
}

async function tcp(host, port) {
  await new Promise((/** @type {(v?: undefined) => void} */ resolve, reject) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => (socket.destroy(), reject(new Error('timed out'))), TIMEOUT_MS);
    socket.once('connect', () => (clearTimeout(timer), socket.destroy(), resolve()));
    socket.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

async function jsonrpc(host, port, method, expected) {
  const res = await fetch(`http://${host.includes(':') ? `[${host}]` : host}:${port}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [] }),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = /** @type {{ result?: unknown, error?: unknown }} */ (await res.json());
  if (body.result === undefined) throw new Error(`${method}: ${JSON.stringify(body.error ?? body).slice(0, 200)}`);
  if (expected !== undefined && body.result !== expected) throw new Error(`${method} answered ${JSON.stringify(body.result)}, expected ${expected}`);
}

const [kind, a, b, c, d] = process.argv.slice(2);
try {
  let code = 0;
  if (kind === 'amqp') await amqp(a, Number(b));
  else if (kind === 'http') await http(a, Number(b));
  else if (kind === 'redis') await redis(a, Number(b));
  else if (kind === 'tcp') await tcp(a, Number(b));
  else if (kind === 'jsonrpc' && c) await jsonrpc(a, Number(b), c, d);
  else if (kind === 'postgres') await postgres(a);
  else if (kind === 'postgres-db') code = await postgresDb(a);
  else {
    console.error('usage: probe.mjs amqp|http|redis|tcp <host> <port> | jsonrpc <host> <port> <method> [expected] | postgres|postgres-db <url>');
    code = 64;
  }
  process.exitCode = code;
} catch (e) {
  console.error(`${kind}: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
}
