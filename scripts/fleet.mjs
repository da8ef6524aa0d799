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
// the runner says which and with what code, stops the others and exits 1.
//
// Environment:
//   FLEET_SERVICES=audit,wallet   only these services
//   FLEET_SERVICES_DIR            where the services are (default: <repo>/services; tests use a fake one)
//   FLEET_STOP_TIMEOUT_MS         how long a stop may take before the rest are killed (default 20000,
//                                 above the services' own SHUTDOWN_TIMEOUT_MS of 10000)
//   <NAME>_HTTP_PORT, <NAME>_DATABASE_SCHEMA   per-service values, e.g. AUDIT_HTTP_PORT=9081
//   Everything else (AMQP_URL, DATABASE_URL, REDIS_URL, LOG_LEVEL, MIGRATE ...) is passed to every service.
//   NO_COLOR / FORCE_COLOR        colours are on when stdout is a terminal, unless told otherwise
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const servicesDir = resolve(process.env.FLEET_SERVICES_DIR ?? join(repoRoot, 'services'));
const cwd = dirname(servicesDir);
const raw = process.argv.includes('--json');
const stopTimeoutMs = Number(process.env.FLEET_STOP_TIMEOUT_MS ?? 20_000);

const useColour =
  process.env.FORCE_COLOR !== undefined && process.env.FORCE_COLOR !== '0'
    ? true
    : !process.env.NO_COLOR && process.stdout.isTTY === true;
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
      lines.push(...err.stack.split('\n').slice(1, 6).map((l) => `  ${paint('90', l.trim())}`));
    }
  }
  return lines;
}

function pipeLines(name, stream, out) {
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  rl.on('line', (line) => {
    const pretty = raw ? undefined : formatPino(line);
    for (const l of pretty ?? [line]) out.write(`${prefix(name)}${l}\n`);
  });
}

// --- processes ------------------------------------------------------------------------------------
const children = new Map(); // name -> { child, exited: Promise<{code, signal}> , done: boolean }
let stopping = false;
let exitCode = 0;

function envFor(name) {
  const env = { ...process.env };
  // One HTTP_PORT or DATABASE_SCHEMA for all would make the services fight over a port or share a
  // schema: these are per service (their own defaults, or <NAME>_HTTP_PORT / <NAME>_DATABASE_SCHEMA).
  const key = name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
  for (const v of ['HTTP_PORT', 'DATABASE_SCHEMA']) {
    delete env[v];
    if (process.env[`${key}_${v}`] !== undefined) env[v] = process.env[`${key}_${v}`];
  }
  delete env.FLEET_SERVICES;
  delete env.FLEET_SERVICES_DIR;
  return env;
}

function start(name) {
  const main = join(servicesDir, name, 'dist', 'main.js');
  // detached: the service gets its own process group, so a Ctrl-C in the terminal reaches the runner
  // only and each service sees exactly one SIGINT (the forwarded one); a second one means "exit now".
  const child = spawn(process.execPath, [main], { cwd, env: envFor(name), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  pipeLines(name, child.stdout, process.stdout);
  pipeLines(name, child.stderr, process.stderr);
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
  children.set(name, entry);
  say(`started ${name} (pid ${child.pid}): node ${join(servicesDir, name, 'dist', 'main.js').slice(cwd.length + 1)}`);
}

function onDeath(name, code, signal) {
  if (stopping) return;
  say(paint('31', `${name} exited unexpectedly (exit code ${code ?? 'none'}${signal ? `, signal ${signal}` : ''}); stopping the others`));
  exitCode = 1;
  void stopAll('SIGTERM');
}

function signalAll(signal) {
  for (const [, entry] of children) {
    if (entry.done) continue;
    try {
      entry.child.kill(signal);
    } catch {
      // already gone
    }
  }
}

let stopped;
function stopAll(signal) {
  if (stopped) return stopped;
  stopping = true;
  signalAll(signal);
  const timer = setTimeout(() => {
    const left = [...children].filter(([, e]) => !e.done).map(([n]) => n);
    say(paint('31', `still running after ${stopTimeoutMs} ms, killing: ${left.join(', ')}`));
    exitCode = 1;
    signalAll('SIGKILL');
  }, stopTimeoutMs);
  stopped = Promise.all([...children.values()].map((e) => e.exited)).then(() => {
    clearTimeout(timer);
    say(exitCode === 0 ? 'all services stopped' : 'fleet stopped with errors');
    process.exit(exitCode);
  });
  return stopped;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (!stopping) {
      say(`${signal}: stopping ${[...children.keys()].join(', ')}`);
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
process.on('exit', () => signalAll('SIGKILL'));

const names = discover();
if (names.length === 0) fail(`no services found in ${servicesDir} (a service is a folder with a package.json)`);
const missing = names.filter((n) => !existsSync(join(servicesDir, n, 'dist', 'main.js')));
if (missing.length) fail(`not built: ${missing.map((n) => `${n}/dist/main.js`).join(', ')} (run pnpm build)`);
width = Math.max(5, ...names.map((n) => n.length));
names.forEach((n, i) => prefixes.set(n, `${paint(PALETTE[i % PALETTE.length], n.padEnd(width))} │ `));
prefixes.delete('fleet');
for (const name of names) start(name);
