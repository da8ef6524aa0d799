import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, isFleetError } from '@wallet-fleet/contracts';
import { rabbitAdmin, waitFor, type TestVhost } from '@wallet-fleet/testing';
import { Registry, type Gauge } from 'prom-client';
import { defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, rawChannel, waitForConnections, deposit } from './support.js';

describe('messaging: publishing', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));
  beforeEach(async () => {
    const ch = await rawChannel(vhost);
    await ch.assertExchange(Exchanges.events, 'topic', { durable: true });
    await ch.assertQueue('sink', { durable: true });
    await ch.bindQueue('sink', Exchanges.events, 'deposit.#');
  });

  it('should never hold more unconfirmed messages than the window, and deliver them all', async () => {
    const registry = new Registry();
    const b = broker(vhost, defineTopology({ queues: [] }), { registry, maxUnconfirmed: 8 });
    await b.start();
    const gauge = registry.getSingleMetric('messaging_unconfirmed_messages') as Gauge;
    let max = 0;
    let done = false;
    const sampler = (async () => {
      while (!done) {
        max = Math.max(max, (await gauge.get()).values[0]?.value ?? 0);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const n = 2000;
    await Promise.all(Array.from({ length: n }, (_, i) => b.publishEvent('deposit.received', deposit(i))));
    done = true;
    await sampler;
    assert.equal(max, 8, 'the window filled up and was never exceeded');
    assert.equal((await gauge.get()).values[0]?.value, 0);
    assert.equal(await depth(vhost, 'sink'), n);
  });

  it('should reject publishes in flight with UNAVAILABLE when the connection dies, and resolve only confirmed ones', async () => {
    const b = broker(vhost, defineTopology({ queues: [] }), { maxUnconfirmed: 64 });
    await b.start();
    await waitForConnections(vhost, 1);
    const n = 20_000;
    const results = Array.from({ length: n }, (_, i) =>
      b.publishEvent('deposit.received', deposit(i)).then(
        () => 'ok' as const,
        (e: unknown) => e,
      ),
    );
    await rabbitAdmin.closeConnections(vhost.vhost);
    const settled = await Promise.all(results);
    const ok = settled.filter((r) => r === 'ok').length;
    const failed = settled.filter((r) => r !== 'ok');
    assert.ok(failed.length > 0, 'some publishes were cut off');
    for (const e of failed) assert.ok(isFleetError(e, ErrorCode.UNAVAILABLE) && e.retryable, String(e));
    // Confirmed means in the queue (more may be there: sent but unconfirmed when the line went down).
    await waitFor(() => b.status().connected, { what: 'reconnect' });
    assert.ok((await depth(vhost, 'sink')) >= ok);
  });
});
