// scripts/fleet.mjs against a fake services folder (tiny node programs), so that prefixing, log
// formatting, signal forwarding and "a service died" can be checked without the real services.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@wallet-fleet/testing';
import { isDevelopmentWebhookSecret, loadWebhooksConfig } from '../../services/webhooks/src/config.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// A service that logs like pino, echoes a few env vars, and stops on SIGTERM/SIGINT after a moment.
// Handlers first: the tests signal as soon as they see the output.
const POLITE = `
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { console.log('got ' + s); setTimeout(() => process.exit(0), 20); });
const log = (o) => console.log(JSON.stringify({ time: new Date().toISOString(), service: 'x', pid: process.pid, ...o }));
log({ level: 'info', msg: 'listening', correlationId: 'corr-1', queue: 'audit.events' });
console.log('env HTTP_PORT=' + (process.env.HTTP_PORT ?? 'unset') + ' LOG_LEVEL=' + (process.env.LOG_LEVEL ?? 'unset') + ' FLEET_DEV_MODE=' + (process.env.FLEET_DEV_MODE ?? 'unset'));
console.log('plain line ' + process.argv[1].split('/').at(-3));
setInterval(() => {}, 1000);
`;
const DIES = `console.log('about to die'); setTimeout(() => process.exit(3), 100);`;
const STUBBORN = `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('stubborn up'); setInterval(() => {}, 1000);`;

// A dev runtime: answers TCP on its port after a moment (so the runner really has to wait), logs, and
// stops on SIGTERM. FAKE_RT_DIE makes it exit before it ever listens.
const FAKE_RUNTIME = `
import { createServer } from 'node:net';
if (process.env.FAKE_RT_DIE) { console.log('runtime dying'); process.exit(4); }
const server = createServer((s) => s.end());
process.on('SIGTERM', () => { console.log('runtime got SIGTERM'); server.close(); setTimeout(() => process.exit(0), 20); });
setTimeout(() => server.listen(Number(process.env.FAKE_RT_PORT), '127.0.0.1', () => console.log('runtime up on ' + process.env.FAKE_RT_PORT + ' data=' + process.env.FAKE_RT_DATA)), 150);
`;
// A service with probes, as service-kit's: logs its port as `http server listening`, answers /ready 503
// naming a failed check until READY_AFTER_MS has passed (never when negative), then 200, and says when
// it first answered 200.
const withProbes = (readyAfterMs: number) => `
import { createServer } from 'node:http';
const readyAt = ${readyAfterMs} < 0 ? Infinity : Date.now() + ${readyAfterMs};
let said = false;
const server = createServer((req, res) => {
  const ok = req.url === '/ready' && Date.now() >= readyAt;
  if (ok && !said) { said = true; console.log('answered ready 200'); }
  res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
  res.end(JSON.stringify(ok ? { status: 'ready' } : { status: 'not_ready', failed: ['kms'] }));
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { server.close(); server.closeAllConnections(); setTimeout(() => process.exit(0), 20); });
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ level: 'info', time: new Date().toISOString(), component: 'http', port: server.address().port, msg: 'http server listening' })));
`;
// Prints what the runtimes gave it.
const RUNTIME_USER = POLITE.replace("console.log('plain line '", "console.log('FAKE_URL=' + (process.env.FAKE_URL ?? 'unset')); console.log('plain line '");

interface FakeRuntime {
  name: string;
  port: number;
  usedBy: string[];
}

/** A free TCP port on loopback (the fake runtimes need a fixed one, as the real ones have). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function runFleet(services: Record<string, string>, env: Record<string, string> = {}, args: string[] = [], runtimes: FakeRuntime[] = []): Run {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-runner-'));
  writeFileSync(join(dir, 'fake-runtime.mjs'), FAKE_RUNTIME);
  const table = runtimes.map((rt) => ({
    name: rt.name,
    command: ['{node}', 'fake-runtime.mjs'],
    port: rt.port,
    portEnv: 'FAKE_RT_PORT',
    env: { FAKE_RT_DATA: '.fleet/{port}' },
    probe: { type: 'tcp' },
    provides: { FAKE_URL: 'tcp://127.0.0.1:{port}' },
    usedBy: rt.usedBy,
  }));
  writeFileSync(join(dir, 'runtimes.json'), JSON.stringify({ runtimes: table }));
  env = { FLEET_DEV_RUNTIMES_FILE: join(dir, 'runtimes.json'), ...env };
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
    assert.match(pretty ?? '', /^alpha │ \d\d:\d\d:\d\d\.\d{3} INFO {2}listening correlationId=corr-1 queue=audit\.events$/);
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
    assert.ok(
      lines(r.output()).some((l) => /^fleet │ .*beta exited unexpectedly \(exit code 3\)/.test(l)),
      r.output(),
    );
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
    assert.ok(out.includes('alpha │ env HTTP_PORT=9081 LOG_LEVEL=debug FLEET_DEV_MODE=true'), r.output());
    assert.ok(out.includes('beta  │ env HTTP_PORT=unset LOG_LEVEL=debug FLEET_DEV_MODE=true'), r.output());
  });

  it('should start the services in development mode unless FLEET_DEV_MODE says otherwise', async () => {
    const dev = track(runFleet({ alpha: POLITE }, { FLEET_DEV_MODE: '' }));
    await waitFor(() => dev.output().includes('plain line alpha'), { what: 'the service' });
    assert.ok(lines(dev.output()).includes('alpha │ env HTTP_PORT=unset LOG_LEVEL=unset FLEET_DEV_MODE=true'), dev.output());
    const asProduction = track(runFleet({ alpha: POLITE }, { FLEET_DEV_MODE: 'false' }));
    await waitFor(() => asProduction.output().includes('plain line alpha'), { what: 'the service' });
    assert.ok(lines(asProduction.output()).includes('alpha │ env HTTP_PORT=unset LOG_LEVEL=unset FLEET_DEV_MODE=false'), asProduction.output());
  });

  it('should give the webhooks service a development secret that the service refuses under NODE_ENV=production', async () => {
    const r = track(runFleet({ webhooks: `console.log('secret=' + process.env.WEBHOOK_SECRETS); setInterval(() => {}, 1000);` }, { WEBHOOK_SECRETS: '' }));
    await waitFor(() => /secret=whsec_\S+/.test(r.output()), { what: 'the secret the service got' });
    const secret = /secret=(whsec_\S+)/.exec(r.output())![1]!;
    assert.ok(isDevelopmentWebhookSecret(secret), 'marked as the development secret');
    const env = { WEBHOOK_SECRETS: secret, SOLANA_RPC_URL: 'https://solana.example', EVM_RPC_URL: 'https://evm.example' };
    assert.equal(loadWebhooksConfig({ ...env, FLEET_DEV_MODE: 'true' }).WEBHOOK_SECRETS?.[0]?.secret, secret);
    assert.throws(
      () => loadWebhooksConfig({ ...env, NODE_ENV: 'production' }),
      /WEBHOOK_SECRETS: the fleet runner's development webhook secret is for development only: refused with NODE_ENV=production/,
    );
    assert.throws(() => loadWebhooksConfig(env), /WEBHOOK_SECRETS: .* needs development mode \(FLEET_DEV_MODE=true\)/);
  });

  describe('fleet ready', () => {
    const portOf = (out: string, name: string) => Number(new RegExp(`^${name} +│ .*http server listening component=http port=(\\d+)$`, 'm').exec(out)?.[1]);

    it('should print one fleet ready line with every service URL once all answer /ready, not before', async () => {
      const r = track(runFleet({ alpha: withProbes(0), beta: withProbes(700) }));
      await waitFor(() => r.output().includes('fleet ready'), { what: 'the fleet ready line' });
      const out = lines(r.output());
      const ready = out.filter((l) => l.includes('fleet ready'));
      assert.equal(ready.length, 1, r.output());
      const [alphaPort, betaPort] = [portOf(r.output(), 'alpha'), portOf(r.output(), 'beta')];
      assert.ok(alphaPort > 0 && betaPort > 0, r.output());
      assert.match(
        ready[0]!,
        new RegExp(`^fleet │ fleet ready in \\d+\\.\\d s: alpha http://127\\.0\\.0\\.1:${alphaPort}, beta http://127\\.0\\.0\\.1:${betaPort}$`),
      );
      const betaReady = out.indexOf('beta  │ answered ready 200');
      assert.ok(betaReady >= 0 && out.indexOf(ready[0]!) > betaReady, `the ready line came after beta answered 200:\n${r.output()}`);
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0);
      assert.equal(lines(r.output()).filter((l) => l.includes('fleet ready')).length, 1, r.output());
    });

    it('should name each service that is not ready within FLEET_READY_TIMEOUT_MS, and why, and keep running', async () => {
      const r = track(runFleet({ alpha: withProbes(0), beta: withProbes(-1), gamma: POLITE }, { FLEET_READY_TIMEOUT_MS: '400' }));
      await waitFor(() => r.output().includes('not ready after'), { what: 'the not-ready line' });
      const port = portOf(r.output(), 'beta');
      const line = lines(r.output()).find((l) => l.includes('not ready after'));
      assert.equal(
        line,
        `fleet │ not ready after 400 ms: beta (http://127.0.0.1:${port}/ready answers 503 failed=kms); gamma (no "http server listening" line in its log yet); still waiting`,
      );
      assert.ok(!r.output().includes('fleet ready'), r.output());
      assert.equal(r.child.exitCode, null, 'the fleet keeps running');
    });
  });

  describe('dev runtimes', () => {
    it('should start a runtime before the services, wait until it answers, and give the services the variables it provides', async () => {
      const port = await freePort();
      const r = track(runFleet({ alpha: RUNTIME_USER }, {}, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
      await waitFor(() => r.output().includes('plain line alpha'), { what: 'alpha' });
      const out = lines(r.output());
      assert.ok(out.includes(`fakechain │ runtime up on ${port} data=.fleet/${port}`), r.output());
      assert.ok(out.includes(`alpha     │ FAKE_URL=tcp://127.0.0.1:${port}`), r.output());
      const answered = out.indexOf(`fleet     │ fakechain answers on 127.0.0.1:${port}`);
      const started = out.findIndex((l) => l.startsWith('fleet     │ started alpha'));
      assert.ok(answered >= 0 && started > answered, `alpha started only after the runtime answered:\n${r.output()}`);
      assert.match(r.output(), /started fakechain \(pid \d+\): node fake-runtime\.mjs \(port \d+, NOT FOR PRODUCTION\)/);
    });

    it('should stop the runtimes after the services on SIGINT and leave the port free', async () => {
      const port = await freePort();
      const r = track(runFleet({ alpha: RUNTIME_USER }, {}, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
      await waitFor(() => r.output().includes('plain line alpha'), { what: 'alpha' });
      r.child.kill('SIGINT');
      assert.equal(await r.exited, 0);
      const out = lines(r.output());
      const serviceStopped = out.indexOf('fleet     │ alpha stopped');
      const runtimeSignalled = out.indexOf('fakechain │ runtime got SIGTERM');
      assert.ok(serviceStopped >= 0 && runtimeSignalled > serviceStopped, `runtime stopped after the service:\n${r.output()}`);
      assert.ok(out.includes('fleet     │ fakechain stopped') && out.includes('fleet     │ all services stopped'), r.output());
      // Nothing left listening: the port can be taken again.
      const server = createServer();
      await new Promise<void>((done, fail) => server.once('error', fail).listen(port, '127.0.0.1', done));
      await new Promise<void>((done) => server.close(() => done()));
    });

    it('should not start a runtime whose variable the operator set, and pass the operator value through', async () => {
      const port = await freePort();
      const r = track(runFleet({ alpha: RUNTIME_USER }, { FAKE_URL: 'tcp://elsewhere:1' }, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
      await waitFor(() => r.output().includes('plain line alpha'), { what: 'alpha' });
      assert.ok(lines(r.output()).includes('alpha │ FAKE_URL=tcp://elsewhere:1'), r.output());
      assert.match(r.output(), /dev runtimes skipped: fakechain \(FAKE_URL set\)/);
      assert.ok(!r.output().includes('runtime up'), r.output());
    });

    it('should start no runtime with FLEET_DEV_RUNTIMES=off', async () => {
      const port = await freePort();
      const r = track(runFleet({ alpha: RUNTIME_USER }, { FLEET_DEV_RUNTIMES: 'off' }, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
      await waitFor(() => r.output().includes('plain line alpha'), { what: 'alpha' });
      assert.ok(!r.output().includes('runtime up'), r.output());
      assert.ok(r.output().includes('FAKE_URL=unset'), r.output());
    });

    it('should start no runtime when none of the started services uses it', async () => {
      const port = await freePort();
      const r = track(runFleet({ alpha: RUNTIME_USER, beta: RUNTIME_USER }, { FLEET_SERVICES: 'beta' }, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
      await waitFor(() => r.output().includes('plain line beta'), { what: 'beta' });
      assert.ok(!r.output().includes('fakechain'), r.output());
      assert.ok(lines(r.output()).includes('beta  │ FAKE_URL=unset'), r.output());
    });

    it('should exit 1 naming a runtime that died before answering, without starting the services', async () => {
      const port = await freePort();
      const r = track(runFleet({ alpha: RUNTIME_USER }, { FAKE_RT_DIE: '1' }, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
      assert.equal(await r.exited, 1);
      assert.match(r.output(), /fakechain exited unexpectedly \(exit code 4\)/);
      assert.ok(!r.output().includes('plain line alpha'), 'no service was started');
    });

    it('should refuse to start when the port of a runtime is already taken, and say how to use what is there', async () => {
      const blocker = createServer((s) => s.end());
      await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
      const { port } = blocker.address() as AddressInfo;
      try {
        const r = track(runFleet({ alpha: RUNTIME_USER }, {}, [], [{ name: 'fakechain', port, usedBy: ['alpha'] }]));
        assert.equal(await r.exited, 1);
        assert.match(r.output(), new RegExp(`fakechain: port ${port} is already in use; stop what listens there, or set FAKE_URL to use it`));
        assert.ok(!r.output().includes('plain line alpha'), 'no service was started');
      } finally {
        await new Promise<void>((done) => blocker.close(() => done()));
      }
    });
  });
});
