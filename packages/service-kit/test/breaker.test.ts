import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { FleetError } from '@wallet-fleet/contracts';
import { createBreaker, createMetrics, isBreakerOpen, type Registry } from '@wallet-fleet/service-kit';
import { waitFor } from '@wallet-fleet/testing';

const fast = { timeoutMs: 1000, errorThresholdPercentage: 50, resetTimeoutMs: 60_000, volumeThreshold: 3 };
const outage = () => new Error('ECONNRESET from the node');

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
}

describe('createBreaker', () => {
  it('should pass results and errors through while closed', async () => {
    const registry = createMetrics('t');
    const b = createBreaker('echo', async (x: number) => x * 2, fast, registry);
    assert.equal(await b.fire(21), 42);
    assert.equal(b.state(), 'closed');
    assert.equal(await metricValue(registry, 'breaker_calls_total', { name: 'echo', outcome: 'success' }), 1);
    b.shutdown();
  });

  it('should open after failures pass the threshold and then reject with retryable UNAVAILABLE without calling the dependency', async () => {
    const registry = createMetrics('t');
    let calls = 0;
    const b = createBreaker(
      'rpc',
      async () => {
        calls++;
        throw outage();
      },
      fast,
      registry,
    );
    for (let i = 0; i < 3; i++) await assert.rejects(b.fire(), (e: unknown) => /ECONNRESET/.test(String(e)) && !isBreakerOpen(e));
    assert.equal(b.state(), 'open');
    const before = calls;
    await assert.rejects(b.fire(), (e: unknown) => {
      assert.ok(e instanceof FleetError);
      assert.ok(isBreakerOpen(e), 'callers tell a refused call from a failed one by type');
      assert.equal(e.code, 'UNAVAILABLE');
      assert.equal(e.retryable, true);
      assert.match(e.message, /rpc is unavailable \(circuit open\)/);
      return true;
    });
    assert.equal(calls, before);
    assert.equal(await metricValue(registry, 'breaker_state', { name: 'rpc' }), 2);
    assert.equal(await metricValue(registry, 'breaker_calls_total', { name: 'rpc', outcome: 'failure' }), 3);
    assert.equal(await metricValue(registry, 'breaker_calls_total', { name: 'rpc', outcome: 'rejected' }), 1);
    const text = await registry.metrics();
    assert.match(text, /^breaker_state\{name="rpc",service="t"\} 2$/m);
    b.shutdown();
  });

  it('should reject a call that runs past timeoutMs with UNAVAILABLE and count it as a timeout', async () => {
    const registry = createMetrics('t');
    const b = createBreaker('slow', () => new Promise<string>((r) => setTimeout(() => r('late'), 500)), { ...fast, timeoutMs: 20 }, registry);
    await assert.rejects(
      b.fire(),
      (e: unknown) => e instanceof FleetError && e.code === 'UNAVAILABLE' && e.retryable && /timed out after 20 ms/.test(e.message) && !isBreakerOpen(e),
    );
    assert.equal(await metricValue(registry, 'breaker_calls_total', { name: 'slow', outcome: 'timeout' }), 1);
    b.shutdown();
  });

  it('should not count non-retryable FleetErrors as failures: a validation error is not an outage', async () => {
    const registry = createMetrics('t');
    const invalid = FleetError.validation([{ path: 'to', message: 'bad address' }]);
    const b = createBreaker(
      'validator',
      async () => {
        throw invalid;
      },
      fast,
      registry,
    );
    for (let i = 0; i < 10; i++) await assert.rejects(b.fire(), (e: unknown) => e === invalid);
    assert.equal(b.state(), 'closed');
    assert.equal(await metricValue(registry, 'breaker_calls_total', { name: 'validator', outcome: 'ignored' }), 10);
    // A retryable FleetError is an outage.
    const down = createBreaker(
      'down',
      async () => {
        throw new FleetError('UNAVAILABLE', 'node down');
      },
      fast,
      registry,
    );
    for (let i = 0; i < 3; i++) await assert.rejects(down.fire());
    assert.equal(down.state(), 'open');
    b.shutdown();
    down.shutdown();
  });

  it('should follow a custom isFailure, but still count timeouts', async () => {
    const registry = createMetrics('t');
    const notFound = Object.assign(new Error('404'), { status: 404 });
    const b = createBreaker(
      'http',
      async (mode: 'missing' | 'hang') => {
        if (mode === 'missing') throw notFound;
        return new Promise<never>(() => {});
      },
      { ...fast, timeoutMs: 10, isFailure: () => false },
      registry,
    );
    for (let i = 0; i < 5; i++) await assert.rejects(b.fire('missing'), (e: unknown) => e === notFound);
    assert.equal(b.state(), 'closed');
    // 5 ignored calls in the window: 5 timeouts make 50 %, 6 make more than half.
    for (let i = 0; i < 5; i++) await assert.rejects(b.fire('hang'), (e: unknown) => e instanceof FleetError && /timed out/.test(e.message));
    assert.equal(b.state(), 'closed');
    await assert.rejects(b.fire('hang'), (e: unknown) => e instanceof FleetError && e.code === 'UNAVAILABLE');
    assert.equal(b.state(), 'open');
    b.shutdown();
  });

  it('should go half-open after resetTimeoutMs and close again on a successful trial call', async () => {
    const registry = createMetrics('t');
    let healthy = false;
    const b = createBreaker(
      'flappy',
      async () => {
        if (!healthy) throw outage();
        return 'ok';
      },
      { ...fast, resetTimeoutMs: 50 },
      registry,
    );
    for (let i = 0; i < 3; i++) await assert.rejects(b.fire());
    assert.equal(b.state(), 'open');
    await waitFor(() => b.state() === 'half-open', { what: 'half-open' });
    assert.equal(await metricValue(registry, 'breaker_state', { name: 'flappy' }), 1);
    healthy = true;
    assert.equal(await b.fire(), 'ok');
    assert.equal(b.state(), 'closed');
    assert.equal(await metricValue(registry, 'breaker_state', { name: 'flappy' }), 0);
    b.shutdown();
  });
});

describe('createBreaker defaults', () => {
  it('should open after 5 calls at 50 % failures when the caller passes only a timeout', async () => {
    const registry = createMetrics('t');
    const b = createBreaker(
      'defaults',
      async () => {
        throw outage();
      },
      { timeoutMs: 1000 },
      registry,
    );
    for (let i = 0; i < 4; i++) await assert.rejects(b.fire(), /ECONNRESET/);
    assert.equal(b.state(), 'closed', 'below the default volume threshold of 5');
    await assert.rejects(b.fire(), /ECONNRESET/);
    assert.equal(b.state(), 'open');
    await assert.rejects(b.fire(), (e: unknown) => isBreakerOpen(e));
    b.shutdown();
  });
});
