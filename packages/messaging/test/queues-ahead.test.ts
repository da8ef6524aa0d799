import assert from 'node:assert/strict';
import { Exchanges } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { applyTopology, broker, eachTestInFreshVhost } from './support.js';

const producer = defineTopology({ queues: [] });
const consumer = defineTopology({
  queues: [{ name: 'prov.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] }],
});

describe('messaging: queues declared ahead by the broker definitions', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should deliver an event published before its consumer first started', async () => {
    // The definitions carry every service's queues and bindings (as setup, compose, k8s and
    // createFleetVhost import them): the queue exists before its service ever ran.
    await applyTopology(vhost, consumer);
    const p = broker(vhost, producer);
    await p.start();
    await p.publishEvent('kyc.approved', { userId: 'u-early' }, { messageId: 'm-early' });
    await p.stop();

    const got: Array<string | undefined> = [];
    const c = broker(vhost, consumer);
    c.handleEvents('prov.events', { 'kyc.approved': async (input, ctx) => void got.push(`${input.userId}/${ctx.messageId}`) });
    await c.start();
    await waitFor(() => got.length === 1, { what: 'the early event handled' });
    assert.deepEqual(got, ['u-early/m-early']);
  });
});
