import assert from 'node:assert/strict';
import net from 'node:net';
import { ErrorCode, Exchanges, isFleetError } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { createBroker, defineTopology } from '@wallet-fleet/messaging';
import { Registry } from 'prom-client';
import { ReconnectBackoff } from '../src/connection.js';
import { broker, depth, eachTestInFreshVhost, killConnections, logger, rawChannel } from './support.js';

/** A TCP port that accepts connections and never says a word (a hung broker, a black-holing proxy). */
async function silentServer(): Promise<{ url: string; accepted: () => number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}/`,
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('messaging: every wait bounded', () => {
  it('should give up a connection attempt that gets no answer after connectTimeoutMs and try again', async () => {
    const silent = await silentServer();
    const b = createBroker({
      url: silent.url,
      service: 'test',
      topology: defineTopology({ queues: [] }),
      logger,
      registry: new Registry(),
      connectTimeoutMs: 200,
      reconnect: { initialDelayMs: 20, maxDelayMs: 50 },
    });
    const started = b.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    try {
      await waitFor(() => silent.accepted() >= 3, { timeoutMs: 5000, what: 'three attempts, each given up' });
    } finally {
      await b.stop({ timeoutMs: 1000 });
      await silent.close();
    }
    const err = await started;
    assert.ok(isFleetError(err, ErrorCode.UNAVAILABLE), String(err));
  });

  it('should stop within its deadline while a connection attempt hangs', async () => {
    const silent = await silentServer();
    const b = createBroker({
      url: silent.url,
      service: 'test',
      topology: defineTopology({ queues: [] }),
      logger,
      registry: new Registry(),
      connectTimeoutMs: 60_000,
    });
    const started = b.start().catch((e: unknown) => e);
    try {
      await waitFor(() => silent.accepted() === 1, { what: 'the attempt under way' });
      const t0 = Date.now();
      await b.stop({ timeoutMs: 300 });
      assert.ok(Date.now() - t0 < 2000, `stop took ${Date.now() - t0} ms`);
      assert.deepEqual(b.status(), { connected: false, consumers: {} });
    } finally {
      await silent.close();
    }
    assert.ok(isFleetError(await started, ErrorCode.UNAVAILABLE));
  });

  it('should keep backing off when sessions die within seconds, and start over after a healthy one', () => {
    let now = 0;
    // random 0.5: no jitter, so the delays are exact.
    const backoff = new ReconnectBackoff(
      { initialDelayMs: 100, maxDelayMs: 10_000 },
      10_000,
      () => now,
      () => 0.5,
    );
    const reconnectAfter = (livedMs: number) => {
      backoff.opened();
      now += livedMs;
      backoff.lost();
      return backoff.next();
    };
    assert.equal(reconnectAfter(60_000), 100);
    // Each session dropped after one second: the delay grows instead of starting at 100 ms again.
    assert.deepEqual([reconnectAfter(1000), reconnectAfter(1000), reconnectAfter(1000)], [200, 400, 800]);
    assert.equal(reconnectAfter(10_000), 100, 'a session that lived 10 s starts the backoff over');
  });
});

describe('messaging: a list of cluster nodes', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should connect through the next node of the list when one is down, and go on to another after a loss', async () => {
    const down = await silentServer();
    const gone = new URL(vhost.url);
    gone.port = String(new URL(down.url).port);
    await down.close(); // nothing listens there any more: connection refused
    const registry = new Registry();
    const b = broker(vhost, defineTopology({ queues: [] }), { url: `${gone.toString()}, ${vhost.url}`, registry });
    await b.start();
    const ch = await rawChannel(vhost);
    await ch.assertQueue('sink', { durable: true });
    await ch.bindQueue('sink', Exchanges.events, 'kyc.approved');
    await b.publishEvent('kyc.approved', { userId: 'u-1', chains: ['SOL'] });
    // Lost: the next attempt goes to the dead node first, then back to the live one.
    await killConnections(vhost, 2);
    await waitFor(async () => b.status().connected && (await registry.getSingleMetric('messaging_reconnects_total')!.get()).values[0]!.value >= 1, {
      what: 'reconnected through the list',
    });
    await b.publishEvent('kyc.approved', { userId: 'u-2', chains: ['SOL'] });
    assert.equal(await depth(vhost, 'sink'), 2);
  });

  it('should refuse a list whose nodes name different users', () => {
    assert.throws(
      () => createBroker({ url: 'amqp://a:x@h1:5672/,amqp://b:y@h2:5672/', service: 't', topology: defineTopology({ queues: [] }), logger }),
      /same user/,
    );
  });
});
