import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, isFleetError } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { Registry } from 'prom-client';
import { applyTopology, broker, depth, eachTestInFreshVhost } from './support.js';

const topology = defineTopology({
  queues: [{ name: 'audit.commands', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.audit.verify' }] }],
});

describe('messaging: expired requests', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should drop and count a request whose caller gave up while it waited, not dead-letter it', async () => {
    await applyTopology(vhost, topology);
    // Request queues are declared by their service, not ahead: it ran once, then stopped.
    const before = broker(vhost, topology);
    before.handleCommands('audit.commands', { 'wallet.audit.verify': async () => ({ valid: true, checked: 0 }) });
    await before.start();
    await before.stop();
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    // Nobody consumes yet: the caller times out while its request waits in the queue.
    await assert.rejects(client.request('wallet.audit.verify', {}, { timeoutMs: 150 }), (e: unknown) => isFleetError(e, ErrorCode.TIMEOUT));
    assert.equal(await depth(vhost, 'audit.commands'), 1);

    const registry = new Registry();
    let ran = 0;
    const server = broker(vhost, topology, { registry });
    server.handleCommands('audit.commands', {
      'wallet.audit.verify': async () => {
        ran++;
        return { valid: true, checked: 0 };
      },
    });
    await server.start();
    const expired = async () =>
      (await registry.getSingleMetric('messaging_consumed_total')!.get()).values.find((v) => v.labels.outcome === 'expired')?.value ?? 0;
    await waitFor(async () => (await expired()) === 1, { what: 'the expired request counted' });
    assert.equal(ran, 0, 'not processed');
    assert.equal(await depth(vhost, 'audit.commands'), 0);
    assert.equal(await depth(vhost, 'audit.commands.dlq'), 0, 'the DLQ keeps poison messages only');
  });
});
