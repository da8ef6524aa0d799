import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, isFleetError } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, sleep } from './support.js';

const topology = defineTopology({
  queues: [{ name: 'prov.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }], prefetch: 16 }],
});

describe('messaging: lifecycle', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should make start() and stop() safe to call twice and report readiness in status()', async () => {
    const b = broker(vhost, topology);
    b.handleEvents('prov.events', { 'kyc.approved': async () => undefined });
    assert.deepEqual(b.status(), { connected: false, consumers: { 'prov.events': false } });
    const s1 = b.start();
    const s2 = b.start();
    assert.equal(s1, s2, 'the call in flight is returned');
    await Promise.all([s1, s2]);
    await b.start();
    assert.deepEqual(b.status(), { connected: true, consumers: { 'prov.events': true } });
    assert.throws(() => b.handleEvents('prov.events', {}), /before start/);
    const t1 = b.stop();
    const t2 = b.stop();
    assert.equal(t1, t2);
    await Promise.all([t1, t2]);
    await b.stop();
    assert.deepEqual(b.status(), { connected: false, consumers: { 'prov.events': false } });
    await assert.rejects(b.publishEvent('kyc.approved', { userId: 'u1' }), (e: unknown) => isFleetError(e, ErrorCode.UNAVAILABLE));
    await assert.rejects(b.start(), /stopped/);
  });

  it('should let stop() finish or requeue in-flight work so that a second consumer gets the rest', async () => {
    const total = 120;
    const first = broker(vhost, topology);
    const handledByFirst = new Set<string>();
    first.handleEvents('prov.events', {
      'kyc.approved': async (input, ctx) => {
        if (input.userId.endsWith('7')) {
          // Slow work that only the stop deadline interrupts.
          await new Promise((r) => ctx.signal.addEventListener('abort', r));
          throw new Error('interrupted');
        }
        await sleep(5); // the work takes time, so some is in flight when stop() comes
        handledByFirst.add(input.userId);
      },
    });
    await first.start();
    const publisher = broker(vhost, defineTopology({ queues: [] }));
    await publisher.start();
    await Promise.all(Array.from({ length: total }, (_, i) => publisher.publishEvent('kyc.approved', { userId: `u-${i}` })));
    await waitFor(() => handledByFirst.size >= 20, { what: 'the first consumer to get going' });
    await first.stop({ timeoutMs: 150 });
    const afterStop = handledByFirst.size;
    // A check that nothing happens: there is no event to wait for, only a window to watch.
    await sleep(50);
    assert.equal(handledByFirst.size, afterStop, 'nothing handled after stop() resolved');

    const second = broker(vhost, topology);
    const handledBySecond = new Set<string>();
    second.handleEvents('prov.events', { 'kyc.approved': async (input) => void handledBySecond.add(input.userId) });
    await second.start();
    const all = Array.from({ length: total }, (_, i) => `u-${i}`);
    await waitFor(() => all.every((u) => handledByFirst.has(u) || handledBySecond.has(u)), { what: 'every message handled by one of them' });
    for (const u of all.filter((x) => x.endsWith('7'))) assert.ok(handledBySecond.has(u), `${u} was requeued, not lost`);
    await second.stop();
    assert.equal(await depth(vhost, 'prov.events'), 0);
    assert.equal(await depth(vhost, 'prov.events.dlq'), 0, 'interrupted work is requeued, not dead-lettered');
  });
});
