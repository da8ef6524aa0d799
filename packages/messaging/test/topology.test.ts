import assert from 'node:assert/strict';
import { Exchanges } from '@wallet-fleet/contracts';
import { rabbitAdmin, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology, type QueueSpec } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, rawChannel } from './support.js';

const events = (over: Partial<QueueSpec> = {}): QueueSpec => ({
  name: 'prov.events',
  kind: 'events',
  bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }],
  ...over,
});

describe('messaging: topology', () => {
  it('should fill defaults: prefetch 32, delivery limit 10, retries for event queues only', () => {
    const t = defineTopology({ queues: [events(), { name: 'prov.commands', kind: 'rpc', bindings: [] }] });
    const [ev, rpc] = t.queues;
    assert.equal(ev!.prefetch, 32);
    assert.equal(ev!.deliveryLimit, 10);
    assert.deepEqual(ev!.retry, { maxAttempts: 5, initialDelayMs: 1000, maxDelayMs: 300_000, factor: 2, jitter: 0.2 });
    assert.equal(rpc!.retry, undefined);
  });

  it('should refuse a bad topology, naming the offending field', () => {
    assert.throws(
      () => defineTopology({ queues: [{ name: 'x.commands', kind: 'rpc', bindings: [], retry: { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 2 } }] }),
      /retry: rpc queues never retry/,
    );
    assert.throws(() => defineTopology({ queues: [events(), events()] }), /declared twice/);
    assert.throws(() => defineTopology({ queues: [events({ bindings: [{ exchange: 'nowhere', pattern: '#' }] })] }), /exchange nowhere is not declared/);
    assert.throws(() => defineTopology({ queues: [events({ name: 'Events' })] }), /queues\.0\.name/);
    assert.throws(() => defineTopology({ queues: [events({ name: 'prov.events.dlq' })] }), /derived/);
    assert.throws(() => defineTopology({ queues: [events({ prefetch: 0 })] }), /prefetch/);
  });

  describe('on the broker', () => {
    let vhost: TestVhost;
    eachTestInFreshVhost((v) => (vhost = v));

    it('should declare quorum work queues dead-lettering into their DLQ, and one delay tier queue per tier for the service', async () => {
      const t = defineTopology({
        exchanges: [{ name: 'partner.events', type: 'fanout' }],
        queues: [
          events({ deliveryLimit: 4, retry: { maxAttempts: 9, initialDelayMs: 10, maxDelayMs: 100 }, bindings: [{ exchange: 'partner.events', pattern: '' }] }),
          { name: 'prov.commands', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.provisioning.*' }] },
        ],
        delayTiers: [10, 100],
      });
      const b = broker(vhost, t);
      await b.start();
      const queues = new Map((await rabbitAdmin.queues(vhost.vhost)).map((q) => [q.name, q]));
      // Nine attempts, still two delay queues: tiers do not grow with attempts or queues.
      assert.deepEqual([...queues.keys()].sort(), ['prov.commands', 'prov.commands.dlq', 'prov.delay.10', 'prov.delay.100', 'prov.events', 'prov.events.dlq']);
      const work = queues.get('prov.events')!;
      assert.equal(work.arguments['x-queue-type'], 'quorum');
      // The limit is a policy (topologyPolicies), so that it can change without re-declaring.
      assert.equal(work.arguments['x-delivery-limit'], undefined);
      assert.equal(work.arguments['x-dead-letter-routing-key'], 'prov.events.dlq');
      assert.equal(queues.get('prov.delay.100')!.arguments['x-message-ttl'], 100);
      assert.equal(queues.get('prov.delay.100')!.arguments['x-dead-letter-exchange'], 'wallet.delayed');
      // A second service instance with the same topology starts fine (declarations are idempotent).
      const again = broker(vhost, t);
      await again.start();
      assert.equal(await depth(vhost, 'prov.events'), 0);
    });

    it('should refuse to start when the broker holds a different declaration of a queue', async () => {
      const ch = await rawChannel(vhost);
      await ch.assertQueue('prov.events', { durable: true, arguments: { 'x-queue-type': 'classic' } });
      await assert.rejects(broker(vhost, defineTopology({ queues: [events()] })).start(), /PRECONDITION_FAILED/);
    });

    it('should keep a work queue an older release declared with an x-delivery-limit argument, and start', async () => {
      const ch = await rawChannel(vhost);
      await ch.assertQueue('prov.events', {
        durable: true,
        arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 10, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': 'prov.events.dlq' },
      });
      const b = broker(vhost, defineTopology({ queues: [events()] }));
      b.handleEvents('prov.events', { 'kyc.approved': async () => undefined });
      await b.start();
      assert.equal(b.status().consumers['prov.events'], true);
    });
  });
});
