// scripts/fleet.mjs against a fake services folder (tiny node programs), so that prefixing, log
// formatting, signal forwarding and "a service died" can be checked without the real services.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@wallet-fleet/testing';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// A service that logs like pino, echoes a few env vars, and stops on SIGTERM/SIGINT after a moment.
// Handlers first: the tests signal as soon as they see the output.
const POLITE = `
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { console.log('got ' + s); setTimeout(() => process.exit(0), 20); });
const log = (o) => console.log(JSON.stringify({ time: new Date().toISOString(), service: 'x', pid: process.pid, ...o }));
log({ level: 'info', msg: 'listening', correlationId: 'corr-1', queue: 'audit.events' });
console.log('env HTTP_PORT=' + (process.env.HTTP_PORT ?? 'unset') + ' LOG_LEVEL=' + (process.env.LOG_LEVEL ?? 'unset'));
console.log('plain line ' + process.argv[1].split('/').at(-3));
setInterval(() => {}, 1000);
`;
const DIES = `console.log('about to die'); setTimeout(() => process.exit(3), 100);`;
const STUBBORN = `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('stubborn up'); setInterval(() => {}, 1000);`;

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function runFleet(services: Record<string, string>, env: Record<string, string> = {}, args: string[] = []): Run {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-runner-'));
  for (const [name, code] of Object.entries(services)) {
    mkdirSync(join(dir, 'services', name, 'dist'), { recursive: true });
    writeFileSync(join(dir, 'services', name, 'package.json'), JSON.stringify({ name, type: 'module' }));
    writeFileSync(join(dir, 'services', name, 'dist', 'main.js'), code);
  }
  const childEnv: Record<string, string | undefined> = { ...process.env, FLEET_SERVICES_DIR: join(dir, 'services'), ...env };
  delete childEnv.FORCE_COLOR;
  const child = spawn(process.execPath, [join(repoRoot, 'scripts/fleet.mjs'), ...args], {
    cwd: repoRoot,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((done) =>
    child.on('close', (code) => {
      rmSync(dir, { recursive: true, force: true });
      done(code);
    }),
  );
  return { child, output: () => out, exited };
}

const lines = (text: string) => text.split('\n').filter(Boolean);

describe('fleet runner (scripts/fleet.mjs)', () => {
  const running: Run[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) {
      // SIGTERM, not SIGKILL: the runner puts services in their own process groups, and only a
      // runner that is still alive can stop them.
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
      await r.exited;
    }
  });
  const track = (r: Run) => (running.push(r), r);

  it('should prefix every line with its service name and show pino lines as time level msg fields', async () => {
    const r = track(runFleet({ alpha: POLITE, beta: POLITE }));
    await waitFor(() => r.output().includes('plain line alpha') && r.output().includes('plain line beta'), { what: 'both services' });
    const out = lines(r.output());
    assert.ok(out.includes('alpha │ plain line alpha'), r.output());
    assert.ok(out.includes('beta  │ plain line beta'), r.output());
    const pretty = out.find((l) => l.startsWith('alpha │') && l.includes('listening'));
    assert.match(pretty ?? '', /^alpha │ \d\d:\d\d:\d\d\.\d{3} INFO  listening correlationId=corr-1 queue=audit\.events$/);
    assert.ok(!r.output().includes('"msg"'), 'no raw JSON by default');
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
  });

  it('should pass the raw JSON lines through with --json', async () => {
    const r = track(runFleet({ alpha: POLITE }, {}, ['--json']));
    await waitFor(() => r.output().includes('plain line alpha'), { what: 'alpha' });
    const json = lines(r.output()).find((l) => l.includes('listening'));
    assert.ok(json?.startsWith('alpha │ {'), r.output());
    assert.equal(JSON.parse(json!.slice('alpha │ '.length)).correlationId, 'corr-1');
  });

  it('should forward SIGTERM to every service and exit 0 once all have stopped', async () => {
    const r = track(runFleet({ alpha: POLITE, beta: POLITE }));
    await waitFor(() => r.output().includes('plain line alpha') && r.output().includes('plain line beta'), { what: 'both services' });
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
    const out = lines(r.output());
    assert.ok(out.includes('alpha │ got SIGTERM') && out.includes('beta  │ got SIGTERM'), r.output());
    assert.ok(out.includes('fleet │ all services stopped'), r.output());
  });

  it('should forward SIGINT as SIGINT', async () => {
    const r = track(runFleet({ alpha: POLITE }));
    await waitFor(() => r.output().includes('plain line alpha'), { what: 'alpha' });
    r.child.kill('SIGINT');
    assert.equal(await r.exited, 0);
    assert.ok(lines(r.output()).includes('alpha │ got SIGINT'), r.output());
  });

  it('should exit non-zero naming the service that died and its exit code, and stop the others', async () => {
    const r = track(runFleet({ alpha: POLITE, beta: DIES }));
    const code = await r.exited;
    assert.equal(code, 1);
    assert.ok(lines(r.output()).some((l) => /^fleet │ .*beta exited unexpectedly \(exit code 3\)/.test(l)), r.output());
    assert.ok(lines(r.output()).includes('alpha │ got SIGTERM'), 'the surviving service was stopped');
  });

  it('should kill a service that does not stop within FLEET_STOP_TIMEOUT_MS and exit non-zero', async () => {
    const r = track(runFleet({ alpha: STUBBORN }, { FLEET_STOP_TIMEOUT_MS: '200' }));
    await waitFor(() => r.output().includes('stubborn up'), { what: 'alpha' });
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 1);
    assert.match(r.output(), /still running after 200 ms, killing: alpha/);
  });

  it('should start only the services named in FLEET_SERVICES', async () => {
    const r = track(runFleet({ alpha: POLITE, beta: POLITE, gamma: POLITE }, { FLEET_SERVICES: 'alpha,gamma' }));
    await waitFor(() => r.output().includes('plain line alpha') && r.output().includes('plain line gamma'), { what: 'alpha and gamma' });
    r.child.kill('SIGTERM');
    assert.equal(await r.exited, 0);
    assert.ok(!r.output().includes('plain line beta'), r.output());
  });

  it('should refuse an unknown name in FLEET_SERVICES and list the known ones', async () => {
    const r = track(runFleet({ alpha: POLITE }, { FLEET_SERVICES: 'alpha,walet' }));
    assert.equal(await r.exited, 1);
    assert.match(r.output(), /unknown service\(s\): walet \(known: alpha\)/);
    assert.ok(!r.output().includes('plain line'), 'nothing was started');
  });

  it('should give each service its own HTTP_PORT (from <NAME>_HTTP_PORT, never one shared value) and pass the rest of the environment', async () => {
    const r = track(runFleet({ alpha: POLITE, beta: POLITE }, { HTTP_PORT: '9999', ALPHA_HTTP_PORT: '9081', LOG_LEVEL: 'debug' }));
    await waitFor(() => r.output().includes('plain line alpha') && r.output().includes('plain line beta'), { what: 'both services' });
    const out = lines(r.output());
    assert.ok(out.includes('alpha │ env HTTP_PORT=9081 LOG_LEVEL=debug'), r.output());
    assert.ok(out.includes('beta  │ env HTTP_PORT=unset LOG_LEVEL=debug'), r.output());
  });
});
