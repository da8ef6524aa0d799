import assert from 'node:assert/strict';
import { Exchanges } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { applyTopology, broker, depth, eachTestInFreshVhost, takeAll } from './support.js';

// Nothing binds kyc.approved.
const topology = defineTopology({
  queues: [{ name: 'prov.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'wallet.created' }] }],
});

describe('messaging: events no queue is bound for', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should park an event that no queue binds in wallet.unroutable (alternate exchange), with its routing key, instead of dropping it', async () => {
    await applyTopology(vhost, topology);
    const b = broker(vhost, topology);
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-nobody' }, { messageId: 'm-parked' });
    // A raw publish (an outbox row) into wallet.events takes the same way.
    await b.publish(Exchanges.events, 'kyc.approved', Buffer.from('{"userId":"u-row"}'), { messageId: 'm-row', contentType: 'application/json' });
    await waitFor(async () => (await depth(vhost, 'wallet.unroutable')) === 2, { what: 'two parked events' });
    const parked = await takeAll(vhost, 'wallet.unroutable');
    assert.deepEqual(
      parked.map((m) => [m.properties.messageId, m.fields.routingKey, m.fields.exchange]),
      [
        ['m-parked', 'kyc.approved', Exchanges.events],
        ['m-row', 'kyc.approved', Exchanges.events],
      ],
    );
    assert.equal(await depth(vhost, 'prov.events'), 0);
  });
});
