import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'mocha';
import { FleetError } from '@wallet-fleet/contracts';
import { createLogger, createService, type Component, type ServiceState } from '@wallet-fleet/service-kit';
import { waitFor } from '@wallet-fleet/testing';

const quiet = () => createLogger({ service: 'lifecycle-test', level: 'silent', destination: new Writable({ write: (_c, _e, d) => d() }) });

function recorder() {
  const events: string[] = [];
  const make = (name: string, opts: { failStart?: boolean; stop?: () => Promise<void>; start?: () => Promise<void> } = {}): Component => ({
    name,
    async start() {
      events.push(`start ${name}`);
      await opts.start?.();
      if (opts.failStart) throw new Error(`${name} refused to start`);
    },
    async stop() {
      events.push(`stop ${name}`);
      await opts.stop?.();
    },
  });
  return { events, make };
}

describe('createService', () => {
  it('should start components in order and stop them in reverse, through the documented states', async () => {
    const { events, make } = recorder();
    const states: ServiceState[] = [];
    const watcher: Component = { name: 'watcher', start: async () => {}, stop: async () => {}, onServiceState: (s) => states.push(s) };
    const svc = createService({ name: 's', logger: quiet(), components: [make('http'), make('db'), make('consumers'), watcher] });
    assert.equal(svc.state(), 'idle');
    await svc.start();
    assert.equal(svc.state(), 'running');
    await svc.stop();
    assert.equal(svc.state(), 'stopped');
    assert.deepEqual(events, ['start http', 'start db', 'start consumers', 'stop consumers', 'stop db', 'stop http']);
    assert.deepEqual(states, ['starting', 'running', 'stopping', 'stopped']);
  });

  it('should return the call in flight when start or stop is called twice', async () => {
    const { events, make } = recorder();
    const svc = createService({ name: 's', logger: quiet(), components: [make('a')] });
    const s1 = svc.start();
    const s2 = svc.start();
    assert.equal(s1, s2);
    await s1;
    await svc.start();
    const t1 = svc.stop();
    assert.equal(svc.stop(), t1);
    await t1;
    await svc.stop();
    assert.deepEqual(events, ['start a', 'stop a']);
  });

  it('should throw INTERNAL on an illegal transition: starting a stopped service', async () => {
    const { make } = recorder();
    const svc = createService({ name: 's', logger: quiet(), components: [make('a')] });
    await svc.start();
    await svc.stop();
    await assert.rejects(svc.start(), (e: unknown) => e instanceof FleetError && e.code === 'INTERNAL' && /stopped → starting/.test(e.message));
    const idle = createService({ name: 's2', logger: quiet(), components: [make('b')] });
    await idle.stop();
    assert.equal(idle.state(), 'stopped');
    await assert.rejects(idle.start(), (e: unknown) => e instanceof FleetError && e.code === 'INTERNAL');
  });

  it('should stop what had started, in reverse, and reject with the cause when a component fails to start', async () => {
    const { events, make } = recorder();
    const svc = createService({ name: 's', logger: quiet(), components: [make('http'), make('db'), make('broker', { failStart: true }), make('consumers')] });
    await assert.rejects(svc.start(), /broker refused to start/);
    assert.equal(svc.state(), 'stopped');
    assert.deepEqual(events, ['start http', 'start db', 'start broker', 'stop db', 'stop http']);
  });

  it('should make a stop() during a failing start wait until the started components are stopped', async () => {
    const { events, make } = recorder();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const svc = createService({ name: 's', logger: quiet(), components: [make('db', { stop: () => gate }), make('broker', { failStart: true })] });
    const starting = svc.start().catch((e: Error) => e);
    await waitFor(() => events.includes('stop db'));
    assert.equal(svc.state(), 'stopping');
    let stopped = false;
    const stopping = svc.stop().then(() => (stopped = true));
    // A check that stop() does not resolve while the gate is shut: a window to watch, not a condition.
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(stopped, false);
    release();
    await stopping;
    assert.equal(svc.state(), 'stopped');
    assert.match(String(await starting), /broker refused to start/);
  });

  it('should bound each stop by the timeout, still stop the others, and reject naming the stuck component', async () => {
    const { events, make } = recorder();
    const svc = createService({
      name: 's',
      logger: quiet(),
      stopTimeoutMs: 50,
      components: [make('http'), make('consumers', { stop: () => new Promise(() => {}) })],
    });
    await svc.start();
    await assert.rejects(svc.stop(), (e: unknown) => e instanceof AggregateError && /consumers: consumers did not stop within 50 ms/.test(e.message));
    assert.equal(svc.state(), 'stopped');
    assert.deepEqual(events, ['start http', 'start consumers', 'stop consumers', 'stop http']);
  });

  it('should, when stopped during start, finish the component being started, skip the rest and stop the started ones', async () => {
    const { events, make } = recorder();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const svc = createService({ name: 's', logger: quiet(), components: [make('http'), make('migrations', { start: () => gate }), make('consumers')] });
    const starting = svc.start();
    await waitFor(() => events.includes('start migrations'));
    const stopping = svc.stop();
    assert.equal(svc.state(), 'starting');
    release();
    await stopping;
    await assert.rejects(starting, (e: unknown) => e instanceof FleetError && e.code === 'UNAVAILABLE');
    assert.equal(svc.state(), 'stopped');
    assert.deepEqual(events, ['start http', 'start migrations', 'stop migrations', 'stop http']);
  });
});

interface Run {
  lines: Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

const fixture = fileURLToPath(new URL('./fixtures/run-service.ts', import.meta.url));

function runFixture(mode: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { ...process.env, FIXTURE_MODE: mode },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        lines.push(JSON.parse(line));
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { lines, exited, kill: (s) => child.kill(s) };
}

const has = (run: Run, msg: string) => run.lines.some((l) => l.msg === msg);
const msgs = (run: Run) => run.lines.map((l) => (l.fixture ? `${l.msg} ${l.fixture}` : l.msg));

describe('runService', () => {
  // Also checks that the log lines come out in the order they were written: exiting before the
  // logger drained used to put 'exiting' ahead of the last component's line.
  it('should stop gracefully in reverse order on SIGTERM and exit 0', async () => {
    const run = runFixture('ok');
    await waitFor(() => has(run, 'service running'), { what: 'service running' });
    run.kill('SIGTERM');
    assert.equal(await run.exited, 0);
    const order = msgs(run).filter((m) => /signal received|fixture component closed|exiting/.test(String(m)));
    assert.deepEqual(order, [
      'signal received: stopping',
      'fixture component closed consumers',
      'fixture component closed broker',
      'fixture component closed pool',
      'exiting',
    ]);
  });

  it('should stop gracefully on SIGINT too', async () => {
    const run = runFixture('ok');
    await waitFor(() => has(run, 'service running'), { what: 'service running' });
    run.kill('SIGINT');
    assert.equal(await run.exited, 0);
    assert.ok(has(run, 'service stopped'));
  });

  it('should exit 2 at once on a second signal while draining', async () => {
    const run = runFixture('hang');
    await waitFor(() => has(run, 'service running'), { what: 'service running' });
    run.kill('SIGTERM');
    await waitFor(() => has(run, 'service stopping'), { what: 'service stopping' });
    run.kill('SIGTERM');
    assert.equal(await run.exited, 2);
    assert.ok(has(run, 'second signal: forcing exit'));
    assert.ok(!msgs(run).includes('fixture component closed consumers'));
  });

  it('should log the cause and exit 1 when the start fails', async () => {
    const run = runFixture('failstart');
    assert.equal(await run.exited, 1);
    const fatal = run.lines.find((l) => l.msg === 'service failed to start');
    assert.ok(fatal, JSON.stringify(run.lines));
    assert.equal(fatal.level, 'fatal');
    assert.match(String((fatal.err as { message: string }).message), /broker cannot reach its dependency/);
    assert.ok(msgs(run).includes('fixture component closed pool'));
  });

  it('should log an uncaught exception, stop gracefully and exit 1', async () => {
    const run = runFixture('crash');
    assert.equal(await run.exited, 1);
    const fatal = run.lines.find((l) => l.msg === 'uncaughtException: stopping');
    assert.ok(fatal, JSON.stringify(run.lines));
    assert.match(String((fatal.err as { message: string }).message), /boom in a timer/);
    assert.ok(msgs(run).includes('fixture component closed pool'));
  });

  it('should log an unhandled rejection, stop gracefully and exit 1', async () => {
    const run = runFixture('rejection');
    assert.equal(await run.exited, 1);
    const fatal = run.lines.find((l) => l.msg === 'unhandledRejection: stopping');
    assert.ok(fatal, JSON.stringify(run.lines));
    assert.match(String((fatal.err as { message: string }).message), /nobody awaited this/);
    assert.ok(msgs(run).includes('fixture component closed consumers'));
  });

  it('should exit 1 when a component does not stop within the timeout', async () => {
    const run = runFixture('unclean');
    await waitFor(() => has(run, 'service running'), { what: 'service running' });
    run.kill('SIGTERM');
    assert.equal(await run.exited, 1);
    assert.ok(has(run, 'unclean stop, exiting'));
    assert.ok(msgs(run).includes('fixture component closed pool'));
  });
});
