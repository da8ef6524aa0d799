import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, isFleetError, roles } from '@wallet-fleet/contracts';
import { startScratchNode, type RabbitNode, waitFor } from '@wallet-fleet/testing';
import { Registry } from 'prom-client';
import { brokerCheck, createBroker, defineTopology, type Broker } from '@wallet-fleet/messaging';
import { logger } from './support.js';

const topology = defineTopology({
  queues: [{ name: 'alarm.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] }],
});

// On a RabbitMQ node of its own: a memory alarm on the machine's node would block every suite.
describe('messaging: a broker memory alarm (scratch node)', function () {
  this.timeout(120_000);
  let scratch: RabbitNode | undefined;
  let b: Broker | undefined;
  before(async function () {
    this.timeout(90_000);
    scratch = await startScratchNode('wfalarm');
  });
  after(async () => {
    await b?.stop({ timeoutMs: 1000 });
    await scratch?.stop();
  });

  it('should fail readiness and refuse publishes at once while the broker blocks publishing, and resume when the alarm clears', async () => {
    const node = scratch!;
    b = createBroker({
      url: node.url,
      service: 'test',
      topology,
      logger,
      registry: new Registry(),
      // The scratch node's only user (guest) stands for every role: who may send what is not under test here.
      access: { rolesOf: (u) => (u === 'guest' ? roles : []) },
      confirmTimeoutMs: 2000,
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    });
    const broker = b;
    const seen: string[] = [];
    broker.handleEvents('alarm.events', { 'kyc.approved': async (input) => void seen.push(input.userId) });
    await broker.start();
    const check = brokerCheck(broker);
    await check.check();

    await node.ctl('set_vm_memory_high_watermark', '0.0001');
    try {
      // RabbitMQ blocks a connection once it publishes: this publish waits (at most confirmTimeoutMs).
      const first = broker.publishEvent('kyc.approved', { userId: 'during', chains: ['SOL'] }).then(
        () => 'ok',
        (e: unknown) => e,
      );
      await waitFor(() => broker.status().blocked !== undefined, { timeoutMs: 15_000, what: 'the broker to block publishing' });
      await assert.rejects(check.check(), /blocks publishing/);
      const t0 = Date.now();
      const refused = await broker.publishEvent('kyc.approved', { userId: 'refused', chains: ['SOL'] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isFleetError(refused, ErrorCode.UNAVAILABLE) && refused.retryable, String(refused));
      assert.ok(Date.now() - t0 < 500, `refused after ${Date.now() - t0} ms, not at once`);
      const r = await first;
      assert.ok(r === 'ok' || isFleetError(r, ErrorCode.UNAVAILABLE), `the blocked publish ended within its bound: ${String(r)}`);
    } finally {
      await node.ctl('set_vm_memory_high_watermark', '0.4');
    }
    await waitFor(() => broker.status().blocked === undefined, { timeoutMs: 15_000, what: 'the broker to unblock publishing' });
    await check.check();
    await broker.publishEvent('kyc.approved', { userId: 'after', chains: ['SOL'] });
    await waitFor(() => seen.includes('after'), { what: 'the event published after the alarm consumed' });
    assert.equal(broker.status().connected, true, 'the same session lived through the alarm');
    assert.ok(!seen.includes('refused'));
  });
});
