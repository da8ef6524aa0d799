import assert from 'node:assert/strict';
import { Exchanges } from '@wallet-fleet/contracts';
import { applyBrokerDefinitions, rabbitAdmin, waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology, topologyDefinitions } from '@wallet-fleet/messaging';
import { applyTopology, broker, depth, eachTestInFreshVhost, rawChannel } from './support.js';

const topology = defineTopology({
  queues: [{ name: 'prov.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }], deliveryLimit: 2 }],
  delayTiers: [1000],
});

/** Deliveries of one message to a consumer that crashes on it every time (nack, requeue) until the broker dead-letters it. */
async function deliveriesOfPoison(vhost: TestVhost): Promise<number> {
  const ch = await rawChannel(vhost);
  let n = 0;
  const { consumerTag } = await ch.consume('prov.events', (m) => {
    if (!m) return;
    n++;
    ch.nack(m, false, true);
  });
  ch.publish(Exchanges.events, 'kyc.approved', Buffer.from('{"userId":"poison"}'));
  await waitFor(async () => (await depth(vhost, 'prov.events.dlq')) === 1, { what: 'the poison message in the DLQ' });
  await ch.cancel(consumerTag);
  await ch.purgeQueue('prov.events.dlq');
  return n;
}

describe('messaging: policies of the broker definitions', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should dead-letter at least once (reject-publish) on work queues and delay tiers', async () => {
    await applyTopology(vhost, topology);
    await broker(vhost, topology).start();
    for (const name of ['prov.events', 'prov.delay.1000']) {
      await waitFor(async () => (await rabbitAdmin.queue(vhost.vhost, name)).effective_policy_definition !== undefined, { what: `the policy of ${name}` });
      const q = await rabbitAdmin.queue(vhost.vhost, name);
      assert.equal(q.effective_policy_definition!['dead-letter-strategy'], 'at-least-once', name);
      assert.equal(q.effective_policy_definition!.overflow, 'reject-publish', name);
    }
  });

  it("should take a queue's delivery limit from its policy and apply a changed limit without re-declaring the queue", async () => {
    await applyTopology(vhost, topology);
    await broker(vhost, topology).start();
    // Limit 2: the first delivery and two redeliveries, then the broker moves it to the DLQ.
    assert.equal(await deliveriesOfPoison(vhost), 3);
    // An operator raises the limit in the definitions and imports them again; the queue stays.
    const defs = topologyDefinitions([topology], vhost.vhost);
    for (const p of defs.policies) if (p.definition['delivery-limit'] !== undefined) p.definition['delivery-limit'] = 4;
    await applyBrokerDefinitions(vhost.vhost, { users: [], permissions: [], topic_permissions: [], ...defs });
    await waitFor(async () => (await rabbitAdmin.queue(vhost.vhost, 'prov.events')).effective_policy_definition?.['delivery-limit'] === 4, {
      what: 'the new limit in effect',
    });
    assert.equal(await deliveriesOfPoison(vhost), 5);
    assert.equal((await rabbitAdmin.queue(vhost.vhost, 'prov.events')).arguments['x-delivery-limit'], undefined);
  });
});
