#!/usr/bin/env node
// Runs every service of the fleet as its own process, with all logs in one terminal.
//
//   node scripts/fleet.mjs [--json]
//
// Discovers services/<name>/package.json and starts `node services/<name>/dist/main.js` from the
// repository root (as the container image does). Each output line gets a coloured `name │` prefix;
// pino JSON lines are shown as `time level msg key=value…` (`--json` passes them through raw).
// SIGINT/SIGTERM are forwarded once to every service and the runner waits until all have stopped (a
// second signal is forwarded too: the services treat it as "exit now"). If a service dies on its own
// the runner says which and with what code, stops the others and exits 1. Once every service answers
// 200 on /ready (its HTTP port is read from its `http server listening` log line), the runner prints
// one `fleet ready` line with their URLs; past FLEET_READY_TIMEOUT_MS it names those that are not.
//
// Environment:
//   FLEET_SERVICES=audit,wallet   only these services
//   FLEET_SERVICES_DIR            where the services are (default: <repo>/services; tests use a fake one)
//   FLEET_STOP_TIMEOUT_MS         how long a stop may take before the rest are killed (default 20000,
//                                 above the services' own SHUTDOWN_TIMEOUT_MS of 10000)
//   FLEET_READY_TIMEOUT_MS        how long the services may take to answer /ready before the runner says
//                                 which did not (default 60000; it keeps waiting and running after that)
//   <NAME>_HTTP_PORT, <NAME>_DATABASE_SCHEMA   per-service values, e.g. AUDIT_HTTP_PORT=9081
//   <NAME>_AMQP_URL               the service's own broker URL; by default, while AMQP_URL is guest's, user
//                                 <name> with password BROKER_PASSWORD_<NAME> (or <name>) on the same broker
//   <NAME>_DATABASE_URL, <NAME>_DATABASE_MIGRATION_URL  the service's own database roles; by default,
//                                 while DATABASE_URL logs in as postgres (the local default), the same
//                                 server and database as <name>_runtime and <name>_migration with
//                                 DATABASE_PASSWORD_<ROLE> (or the role's name) as password
//   BROKER_USER_ROLES             in development mode, by default the development approvers (approver-1,
//                                 approver-2: scripts/dev-approvers.mjs) mapped to the approver role
//   Everything else (AMQP_URL, REDIS_URL, LOG_LEVEL, MIGRATE ...) is passed to every service.
//   NO_COLOR / FORCE_COLOR        colours are on when stdout is a terminal, unless told otherwise
//
// Development runtimes (NOT FOR PRODUCTION): before the services, the runner starts what they need
// locally, as declared in infra/dev-runtimes.json (the Cloud KMS emulator on 9011, the Solana runtime
// on 8899, anvil on 8545), each with its own prefix, waits until each answers its probe, and gives the
// services the variables that point at them (KMS_ENDPOINT, SOLANA_RPC_URL, EVM_RPC_URL). They stop
// after the services. A runtime is skipped when the operator set one of the variables it provides, or
// when none of the started services uses it.
//   FLEET_DEV_RUNTIMES=off        start none of them
//   FLEET_DEV_RUNTIMES_FILE       another table (tests use a fake one)
//   FLEET_RUNTIME_START_TIMEOUT_MS  how long a runtime may take to answer (default 30000)
//   KMS_EMULATOR_PORT, SOLANA_RUNTIME_PORT, EVM_RUNTIME_PORT  the runtimes' ports; ANVIL_BIN  the anvil binary
// Development webhook secret (NOT FOR PRODUCTION): when the webhooks service runs and WEBHOOK_SECRETS
// is unset, the runner gives it the secret kept in .fleet/webhook-secret (made on first run), so that
// a local sender (scripts/send-deposit.mjs) can sign deliveries. It decodes to bytes starting with
// `wallet-fleet-development`, which the webhooks service refuses outside development mode.
// Development mode: the services get FLEET_DEV_MODE=true unless it is set (FLEET_DEV_MODE=false runs
// them as production would: Cloud KMS, https chains, your own secret); they refuse it, and every
// development runtime, when NODE_ENV=production.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { developmentApprovers } from './dev-approvers.mjs';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const servicesDir = resolve(process.env.FLEET_SERVICES_DIR ?? join(repoRoot, 'services'));
const cwd = dirname(servicesDir);
const raw = process.argv.includes('--json');
const stopTimeoutMs = Number(process.env.FLEET_STOP_TIMEOUT_MS ?? 20_000);
const runtimeStartTimeoutMs = Number(process.env.FLEET_RUNTIME_START_TIMEOUT_MS ?? 30_000);
const readyTimeoutMs = Number(process.env.FLEET_READY_TIMEOUT_MS ?? 60_000);
const runtimesFile = resolve(process.env.FLEET_DEV_RUNTIMES_FILE ?? join(repoRoot, 'infra', 'dev-runtimes.json'));

const useColour = process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0' ? true : !process.env.NO_COLOR && process.stdout.isTTY === true;
const paint = (code, text) => (useColour ? `\x1b[${code}m${text}\x1b[0m` : text);
const PALETTE = ['36', '35', '33', '32', '34', '96', '95', '93', '92', '94'];
const LEVEL_COLOUR = { trace: '90', debug: '90', info: '32', warn: '33', error: '31', fatal: '41;97' };
const PINO_LEVELS = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };
// Shown as the line itself or implied by the prefix; everything else is printed as key=value.
const HIDDEN = new Set(['level', 'time', 'msg', 'message', 'service', 'pid', 'hostname', 'v', 'err', 'traceparent']);

// --- discovery ------------------------------------------------------------------------------------
function discover() {
  if (!existsSync(servicesDir)) fail(`no services folder at ${servicesDir}`);
  const all = readdirSync(servicesDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(servicesDir, d.name, 'package.json')))
    .map((d) => d.name)
    .sort();
  const wanted = (process.env.FLEET_SERVICES ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (wanted.length === 0) return all;
  const unknown = wanted.filter((w) => !all.includes(w));
  if (unknown.length) fail(`FLEET_SERVICES names unknown service(s): ${unknown.join(', ')} (known: ${all.join(', ') || 'none'})`);
  return all.filter((name) => wanted.includes(name));
}

// --- output ---------------------------------------------------------------------------------------
let width = 5;
const prefixes = new Map();
function prefix(name) {
  return prefixes.get(name) ?? `${paint('1', 'fleet'.padEnd(width))} │ `;
}
function say(text) {
  process.stdout.write(`${prefix('fleet')}${text}\n`);
}
function fail(text) {
  process.stderr.write(`fleet: ${text}\n`);
  process.exit(1);
}

function short(value) {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  const oneLine = /\s/.test(s) && typeof value === 'string' ? JSON.stringify(s) : s;
  return oneLine.length > 120 ? `${oneLine.slice(0, 117)}...` : oneLine;
}

/** A pino line as `HH:MM:SS.mmm LEVEL msg key=value …`, or undefined when it is not one. */
function formatPino(line) {
  if (!line.startsWith('{')) return undefined;
  let o;
  try {
    o = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (o === null || typeof o !== 'object' || !('level' in o)) return undefined;
  const level = String(typeof o.level === 'number' ? (PINO_LEVELS[o.level] ?? o.level) : o.level);
  const t = typeof o.time === 'number' ? new Date(o.time) : typeof o.time === 'string' ? new Date(o.time) : undefined;
  const time = t && !Number.isNaN(t.getTime()) ? t.toISOString().slice(11, 23) : '';
  const parts = [paint('90', time), paint(LEVEL_COLOUR[level] ?? '0', level.toUpperCase().padEnd(5)), String(o.msg ?? o.message ?? '')];
  for (const [k, v] of Object.entries(o)) {
    if (HIDDEN.has(k) || v === undefined) continue;
    parts.push(`${paint('90', `${k}=`)}${short(v)}`);
  }
  const lines = [parts.filter(Boolean).join(' ')];
  if (o.err && typeof o.err === 'object') {
    const err = o.err;
    lines.push(`  ${paint('31', `${err.type ?? 'Error'}: ${err.message ?? ''}`)}${err.code ? ` code=${err.code}` : ''}`);
    if (typeof err.stack === 'string' && (level === 'error' || level === 'fatal')) {
      lines.push(
        ...err.stack
          .split('\n')
          .slice(1, 6)
          .map((l) => `  ${paint('90', l.trim())}`),
      );
    }
  }
  return lines;
}

/**
 * @param {string} name
 * @param {import('node:stream').Readable} stream
 * @param {NodeJS.WritableStream} out
 * @param {(line: string) => void} [seen] told of every raw line
 */
function pipeLines(name, stream, out, seen) {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', (line) => {
    seen?.(line);
    const pretty = raw ? undefined : formatPino(line);
    for (const l of pretty ?? [line]) out.write(`${prefix(name)}${l}\n`);
  });
}

// --- dev runtimes ---------------------------------------------------------------------------------
function loadRuntimes() {
  if (!existsSync(runtimesFile)) fail(`no dev runtime table at ${runtimesFile}`);
  let table;
  try {
    table = JSON.parse(readFileSync(runtimesFile, 'utf8'));
  } catch (e) {
    fail(`cannot read ${runtimesFile}: ${/** @type {Error} */ (e).message}`);
  }
  return table.runtimes ?? [];
}

/** The runtimes to start for these services, each with its port, command and the env it provides. */
function planRuntimes(serviceNames) {
  const setting = (process.env.FLEET_DEV_RUNTIMES ?? 'on').toLowerCase();
  if (['off', '0', 'false', 'no'].includes(setting)) return { start: [], skipped: ['all (FLEET_DEV_RUNTIMES=off)'] };
  const start = [];
  const skipped = [];
  for (const rt of loadRuntimes()) {
    if (!rt.usedBy.some((s) => serviceNames.includes(s))) continue;
    const own = Object.keys(rt.provides).filter((k) => process.env[k] !== undefined && process.env[k] !== '');
    if (own.length) {
      skipped.push(`${rt.name} (${own.join(', ')} set)`);
      continue;
    }
    const rawPort = process.env[rt.portEnv] || String(rt.port);
    const port = Number(rawPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${rt.portEnv} must be a port number, got ${JSON.stringify(rawPort)}`);
    const fill = (v) => v.replaceAll('{port}', String(port));
    const command = rt.command.map((part) => {
      if (part === '{node}') return process.execPath;
      return fill(part);
    });
    const env = { ...process.env };
    for (const [k, v] of Object.entries(rt.env ?? {})) if (env[k] === undefined || env[k] === '') env[k] = fill(v);
    if (rt.portEnv) env[rt.portEnv] = String(port);
    const provides = Object.fromEntries(Object.entries(rt.provides).map(([k, v]) => [k, fill(v)]));
    start.push({ name: rt.name, port, command, env, probe: rt.probe, provides });
  }
  return { start, skipped };
}

function probeTcp(port) {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1000);
    socket.once('connect', () => (socket.destroy(), done(true)));
    socket.once('timeout', () => (socket.destroy(), done(false)));
    socket.once('error', () => done(false));
  });
}

async function probeJsonRpc(port, method, expect) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: [] }),
      signal: AbortSignal.timeout(1000),
    });
    const body = /** @type {{ result?: unknown }} */ (await res.json());
    return expect === undefined ? body.result !== undefined : body.result === expect;
  } catch {
    return false;
  }
}

const answers = (rt) => (rt.probe?.type === 'jsonrpc' ? probeJsonRpc(rt.port, rt.probe.method, rt.probe.expect) : probeTcp(rt.port));

// --- processes ------------------------------------------------------------------------------------
const children = new Map(); // name -> { child, exited: Promise<{code, signal}> , done: boolean }
const runtimes = new Map(); // the dev runtimes, same shape; stopped after the services
let stopping = false;
let exitCode = 0;

function envFor(name, provided) {
  const env = { ...process.env, ...provided };
  // One HTTP_PORT or DATABASE_SCHEMA for all would make the services fight over a port or share a
  // schema: these are per service (their own defaults, or <NAME>_HTTP_PORT / <NAME>_DATABASE_SCHEMA).
  const key = name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  for (const v of ['HTTP_PORT', 'DATABASE_SCHEMA']) {
    delete env[v];
    if (process.env[`${key}_${v}`] !== undefined) env[v] = process.env[`${key}_${v}`];
  }
  // Each service connects as its own broker user (the catalogue's caller/producer checks go by it):
  // <NAME>_AMQP_URL when set; else, when AMQP_URL logs in as guest (the local default), the same
  // broker as user <name> with BROKER_PASSWORD_<NAME> or the name as password (the users that
  // scripts/broker-users.mjs creates through setup.sh). Another AMQP_URL is passed as it is.
  const own = process.env[`${key}_AMQP_URL`];
  const shared = new URL(env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672');
  if (own) env.AMQP_URL = own;
  else if ((decodeURIComponent(shared.username) || 'guest') === 'guest') {
    shared.username = encodeURIComponent(name);
    shared.password = encodeURIComponent(process.env[`BROKER_PASSWORD_${key}`] || name);
    env.AMQP_URL = shared.toString();
  }
  if (!env.FLEET_DEV_MODE) env.FLEET_DEV_MODE = 'true';
  // The development approvers (scripts/dev-approvers.mjs) hold the approver role, unless the
  // operator maps broker users to roles themselves.
  if (env.FLEET_DEV_MODE === 'true' && env.BROKER_USER_ROLES === undefined) {
    env.BROKER_USER_ROLES = developmentApprovers.map((u) => `${u}:approver`).join(',');
  }
  // anvil mines only on transactions and keeps its `finalized` tag 64 blocks behind: on the local chain
  // a deposit counts as final after one confirmation, else "Try it" deposits stay `confirming`.
  if (env.FLEET_DEV_MODE === 'true' && !env.EVM_FINALITY) env.EVM_FINALITY = '1';
  // Each service's runtime role has only what its migrations grant, and the migration role owns its
  // schema (scripts/database-roles.mjs, run by setup.sh, creates them locally): <NAME>_DATABASE_URL
  // and <NAME>_DATABASE_MIGRATION_URL when set; else, while DATABASE_URL logs in as postgres, the
  // same database as <name>_runtime / <name>_migration. Another DATABASE_URL is passed as it is.
  const ownDb = process.env[`${key}_DATABASE_URL`];
  const sharedDb = new URL(env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres');
  if (ownDb) {
    env.DATABASE_URL = ownDb;
    env.DATABASE_MIGRATION_URL = process.env[`${key}_DATABASE_MIGRATION_URL`] ?? ownDb;
  } else if ((decodeURIComponent(sharedDb.username) || 'postgres') === 'postgres') {
    const as = (role) => {
      const u = new URL(sharedDb);
      u.username = encodeURIComponent(role);
      u.password = encodeURIComponent(process.env[`DATABASE_PASSWORD_${role.toUpperCase()}`] || role);
      return u.toString();
    };
    env.DATABASE_URL = as(`${key.toLowerCase()}_runtime`);
    env.DATABASE_MIGRATION_URL = as(`${key.toLowerCase()}_migration`);
  }
  delete env.FLEET_SERVICES;
  delete env.FLEET_SERVICES_DIR;
  return env;
}

function launch(group, name, command, args, env, shown, seen) {
  // detached: the child gets its own process group, so a Ctrl-C in the terminal reaches the runner
  // only and each child sees exactly one SIGINT (the forwarded one); a second one means "exit now".
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  pipeLines(name, child.stdout, process.stdout, seen);
  pipeLines(name, child.stderr, process.stderr, seen);
  const entry = { child, done: false };
  entry.exited = new Promise((resolveExit) => {
    child.on('error', (e) => {
      say(`${name} could not be started: ${e.message}`);
      entry.done = true;
      resolveExit({ code: 1, signal: null });
      onDeath(name, 1, null);
    });
    child.on('close', (code, signal) => {
      if (entry.done) return;
      entry.done = true;
      resolveExit({ code, signal });
      if (stopping) {
        if (code !== 0 && signal === null) {
          say(`${name} stopped with exit code ${code}`);
          exitCode = 1;
        } else say(`${name} stopped`);
      } else onDeath(name, code, signal);
    });
  });
  group.set(name, entry);
  say(`started ${name} (pid ${child.pid}): ${shown}`);
  return entry;
}

function start(name, provided) {
  const main = join(servicesDir, name, 'dist', 'main.js');
  launch(children, name, process.execPath, [main], envFor(name, provided), `node ${main.slice(cwd.length + 1)}`, (line) => {
    // The port the service really listens on (its own default, <NAME>_HTTP_PORT, or 0), from
    // service-kit's line: the runner never has to know the services' defaults.
    if (!line.includes('http server listening')) return;
    try {
      const o = JSON.parse(line);
      if (o.msg === 'http server listening' && Number.isInteger(o.port)) httpPorts.set(name, o.port);
    } catch {
      // not a pino line
    }
  });
}

// --- readiness ------------------------------------------------------------------------------------
/** @type {Map<string, number>} service -> the HTTP port it logged */
const httpPorts = new Map();

/**
 * The /ready answer of a service: 'ready', or why not in a few words.
 * @param {string} name
 * @returns {Promise<string>}
 */
async function readiness(name) {
  const port = httpPorts.get(name);
  if (port === undefined) return 'no "http server listening" line in its log yet';
  try {
    const res = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(2000) });
    if (res.status === 200) return 'ready';
    const body = /** @type {{ failed?: unknown } | undefined} */ (await res.json().catch(() => undefined));
    const failed = Array.isArray(body?.failed) ? ` failed=${body.failed.join(',')}` : '';
    return `http://127.0.0.1:${port}/ready answers ${res.status}${failed}`;
  } catch (e) {
    const err = /** @type {Error & { cause?: Error }} */ (e);
    return `http://127.0.0.1:${port}/ready: ${err.cause?.message ?? err.message}`;
  }
}

/**
 * Polls every service's /ready until all answer 200, then prints one `fleet ready` line with the
 * URLs; past readyTimeoutMs it names those that are not (and keeps polling: a service waiting for a
 * dependency may still come up, and then the ready line follows).
 * @param {string[]} names
 * @param {Array<{ name: string, port: number }>} runtimePlan
 */
async function announceReady(names, runtimePlan) {
  const t0 = Date.now();
  let warned = false;
  /** @type {Map<string, string>} */
  const pending = new Map(names.map((n) => [n, 'not polled yet']));
  while (!stopping && pending.size > 0) {
    await Promise.all(
      [...pending.keys()].map(async (name) => {
        const state = await readiness(name);
        if (state === 'ready') pending.delete(name);
        else pending.set(name, state);
      }),
    );
    if (stopping || pending.size === 0) break;
    if (!warned && Date.now() - t0 > readyTimeoutMs) {
      warned = true;
      const why = [...pending].map(([n, state]) => `${n} (${state})`).join('; ');
      say(paint('31', `not ready after ${readyTimeoutMs} ms: ${why}; still waiting`));
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (stopping) return;
  const urls = names.map((n) => `${n} http://127.0.0.1:${httpPorts.get(n)}`).join(', ');
  const rts = runtimePlan.length ? `; dev runtimes: ${runtimePlan.map((rt) => `${rt.name} 127.0.0.1:${rt.port}`).join(', ')}` : '';
  say(paint('32', `fleet ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${urls}${rts}`));
}

function startRuntime(rt) {
  const [command, ...args] = rt.command;
  const shown = [command === process.execPath ? 'node' : command.startsWith(cwd) ? command.slice(cwd.length + 1) : command, ...args].join(' ');
  return launch(runtimes, rt.name, command, args, rt.env, `${shown} (port ${rt.port}, NOT FOR PRODUCTION)`);
}

/** Starts the runtimes together and resolves once each answers; false when one failed (the runner is
 * then stopping). */
async function startRuntimes(plan) {
  // Something else on the port would answer the probe and the runtime itself would die on EADDRINUSE:
  // say so plainly instead.
  for (const rt of plan) {
    if (await probeTcp(rt.port)) {
      const vars = Object.keys(rt.provides).join(', ');
      say(paint('31', `${rt.name}: port ${rt.port} is already in use; stop what listens there, or set ${vars} to use it`));
      exitCode = 1;
      void stopAll('SIGTERM');
      return false;
    }
  }
  const entries = plan.map((rt) => [rt, startRuntime(rt)]);
  const results = await Promise.all(
    entries.map(async ([rt, entry]) => {
      const deadline = Date.now() + runtimeStartTimeoutMs;
      while (!stopping && !entry.done) {
        if (await answers(rt)) {
          say(`${rt.name} answers on 127.0.0.1:${rt.port}`);
          return true;
        }
        if (Date.now() > deadline) {
          say(paint('31', `${rt.name} did not answer on port ${rt.port} within ${runtimeStartTimeoutMs} ms; stopping`));
          exitCode = 1;
          void stopAll('SIGTERM');
          return false;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    }),
  );
  return results.every(Boolean) && !stopping;
}

function onDeath(name, code, signal) {
  if (stopping) return;
  say(paint('31', `${name} exited unexpectedly (exit code ${code ?? 'none'}${signal ? `, signal ${signal}` : ''}); stopping the others`));
  exitCode = 1;
  void stopAll('SIGTERM');
}

function signalAll(signal, group = children) {
  for (const [, entry] of group) {
    if (entry.done) continue;
    try {
      entry.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Stops a group of processes; whatever still runs after stopTimeoutMs is killed. */
function stopGroup(group, signal) {
  signalAll(signal, group);
  const timer = setTimeout(() => {
    const left = [...group].filter(([, e]) => !e.done).map(([n]) => n);
    say(paint('31', `still running after ${stopTimeoutMs} ms, killing: ${left.join(', ')}`));
    exitCode = 1;
    signalAll('SIGKILL', group);
  }, stopTimeoutMs);
  return Promise.all([...group.values()].map((e) => e.exited)).then(() => clearTimeout(timer));
}

let stopped;
function stopAll(signal) {
  if (stopped) return stopped;
  stopping = true;
  // Services first: while they drain they may still sign (KMS) or send (chains).
  stopped = stopGroup(children, signal)
    .then(() => stopGroup(runtimes, 'SIGTERM'))
    .then(() => {
      say(exitCode === 0 ? 'all services stopped' : 'fleet stopped with errors');
      process.exit(exitCode);
    });
  return stopped;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (!stopping) {
      say(`${signal}: stopping ${[...children.keys(), ...runtimes.keys()].join(', ')}`);
      void stopAll(signal);
    } else {
      say(`${signal} again: forwarding (services exit at once)`);
      signalAll(signal);
    }
  });
}
// A closed stdout (`fleet.sh | head`) must stop the fleet, not crash the runner and orphan it.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e.code !== 'EPIPE') throw e;
    if (!stopping) void stopAll('SIGTERM');
  });
}
// The children are in their own process groups: if the runner goes down some other way, do not leave
// them behind.
process.on('exit', () => {
  signalAll('SIGKILL');
  signalAll('SIGKILL', runtimes);
});

const names = discover();
if (names.length === 0) fail(`no services found in ${servicesDir} (a service is a folder with a package.json)`);
const missing = names.filter((n) => !existsSync(join(servicesDir, n, 'dist', 'main.js')));
if (missing.length) fail(`not built: ${missing.map((n) => `${n}/dist/main.js`).join(', ')} (run pnpm build)`);
const plan = planRuntimes(names);
const notBuilt = plan.start.filter((rt) => rt.command[0] === process.execPath && !existsSync(resolve(cwd, rt.command[1])));
if (notBuilt.length) fail(`not built: ${notBuilt.map((rt) => rt.command[1]).join(', ')} (run pnpm build)`);
const all = [...plan.start.map((rt) => rt.name), ...names];
width = Math.max(5, ...all.map((n) => n.length));
for (const [i, n] of all.entries()) prefixes.set(n, `${paint(PALETTE[i % PALETTE.length], n.padEnd(width))} │ `);
prefixes.delete('fleet');
if (plan.skipped.length) say(`dev runtimes skipped: ${plan.skipped.join('; ')}`);
// What a development secret decodes to first (services/webhooks/src/config.ts: DEVELOPMENT_SECRET_MARK).
const DEV_SECRET_MARK = 'wallet-fleet-development';

/**
 * The development webhook secret: .fleet/webhook-secret, created (mode 600) on first use, and made
 * again when it lacks the development mark (a file from before the mark).
 */
function devWebhookSecret() {
  const file = join(cwd, '.fleet', 'webhook-secret');
  const marked = (s) => Buffer.from(s.slice('whsec_'.length), 'base64').subarray(0, DEV_SECRET_MARK.length).toString('latin1') === DEV_SECRET_MARK;
  if (!existsSync(file) || !marked(readFileSync(file, 'utf8').trim())) {
    mkdirSync(dirname(file), { recursive: true });
    const key = Buffer.concat([Buffer.from(DEV_SECRET_MARK, 'latin1'), randomBytes(32)]);
    writeFileSync(file, `whsec_${key.toString('base64')}\n`, { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}

if (await startRuntimes(plan.start)) {
  const provided = Object.assign({}, ...plan.start.map((rt) => rt.provides));
  if (names.includes('webhooks') && !process.env.WEBHOOK_SECRETS) {
    provided.WEBHOOK_SECRETS = devWebhookSecret();
    say('webhooks: development signing secret in .fleet/webhook-secret (set WEBHOOK_SECRETS to use your own)');
  }
  for (const name of names) start(name, provided);
  void announceReady(names, plan.start);
}
