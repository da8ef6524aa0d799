import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, isFleetError } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { broker, eachTestInFreshVhost, killConnections, rawChannel, sleep } from './support.js';

const topology = defineTopology({
  queues: [{ name: 'sink.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] }],
});

describe('messaging: reconnects', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should lose no message when the broker closes the connections mid-stream, and resume consuming', async () => {
    const consumer = broker(vhost, topology);
    const seen = new Set<string>();
    consumer.handleEvents('sink.events', {
      'kyc.approved': async (input) => {
        await sleep(1); // the handler's work takes time, so deliveries are in flight when the kill lands
        seen.add(input.userId);
      },
    });
    await consumer.start();
    const publisher = broker(vhost, defineTopology({ queues: [] }));
    await publisher.start();

    let killed = false;
    const kill = killConnections(vhost, 2).then(() => (killed = true));
    const sent: string[] = [];
    // A publish that rejects was not sent: the caller retries it. One that resolves was confirmed.
    async function send(id: string): Promise<void> {
      for (;;) {
        try {
          await publisher.publishEvent('kyc.approved', { userId: id });
          sent.push(id);
          return;
        } catch (e) {
          assert.ok(isFleetError(e, ErrorCode.UNAVAILABLE), String(e));
          await sleep(10); // the caller's pause before its retry
        }
      }
    }
    let n = 0;
    let afterKill = 0;
    while (afterKill < 100) {
      await Promise.all(Array.from({ length: 4 }, () => send(`u-${n++}`)));
      if (killed) afterKill += 4;
      else await sleep(2); // paces the stream until the kill lands (the loop then counts to 100)
    }
    await kill;
    await waitFor(() => sent.every((id) => seen.has(id)), { timeoutMs: 20_000, what: `all ${sent.length} messages consumed` });
    await waitFor(() => consumer.status().connected && consumer.status().consumers['sink.events'], { what: 'the consumer to be back' });
    assert.equal(sent.length, n, 'every publish was eventually confirmed');
  });

  it('should re-assert the topology after a reconnect', async () => {
    const b = broker(vhost, topology);
    const seen: string[] = [];
    b.handleEvents('sink.events', { 'kyc.approved': async (input) => void seen.push(input.userId) });
    await b.start();
    await killConnections(vhost, 1);
    await waitFor(() => b.status().connected, { what: 'reconnect' });
    // The queue is deleted while we are connected: the broker cancels our consumer; the next
    // session declares it again.
    const ch = await rawChannel(vhost);
    await ch.deleteQueue('sink.events');
    await waitFor(
      async () => {
        try {
          await (await rawChannel(vhost)).checkQueue('sink.events');
          return b.status().consumers['sink.events'];
        } catch {
          return false;
        }
      },
      { what: 'the queue declared again' },
    );
    await b.publishEvent('kyc.approved', { userId: 'after' });
    await waitFor(() => seen.includes('after'), { what: 'consumption after re-declaration' });
  });
});
