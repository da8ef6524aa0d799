import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, FleetError, Headers } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defer, defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, takeAll, text } from './support.js';

const topology = defineTopology({
  queues: [
    {
      name: 'prov.events',
      kind: 'events',
      bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }],
      retry: { maxAttempts: 3, initialDelayMs: 30, maxDelayMs: 1000, factor: 2, jitter: 0 },
    },
  ],
  delayTiers: [20, 200, 1000],
});

const breakerOpen = () => new FleetError(ErrorCode.UNAVAILABLE, 'wallet-service is unavailable (circuit open)', { retryable: true });

interface Seen {
  attempt: number;
  at: number;
  history: Array<{ attempt: number; code: string; message: string }>;
}

describe('messaging: deferring a message without using an attempt', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should bring a deferred message back after the delay with the same attempt number and its error history', async () => {
    const b = broker(vhost, topology);
    const seen: Seen[] = [];
    b.handleEvents('prov.events', {
      // The handler only says what happened; no header, channel or queue name in sight.
      'kyc.approved': async (_input, ctx) => {
        seen.push({ attempt: ctx.attempt, at: Date.now(), history: JSON.parse(text(ctx.headers[Headers.errorHistory] ?? '[]')) });
        if (seen.length === 1) throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'kms down');
        if (seen.length <= 3) throw defer(breakerOpen(), { delayMs: 200 });
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-defer' }, { messageId: 'm-defer' });
    await waitFor(() => seen.length === 4, { what: 'the message handled a fourth time' });

    assert.deepEqual(
      seen.map((s) => s.attempt),
      [1, 2, 2, 2],
      'a deferral uses no attempt',
    );
    // Lower bounds only: the delay queue cannot hand a message back before its TTL.
    assert.ok(seen[2]!.at - seen[1]!.at >= 195, `first deferral waited ${seen[2]!.at - seen[1]!.at} ms`);
    assert.ok(seen[3]!.at - seen[2]!.at >= 195, `second deferral waited ${seen[3]!.at - seen[2]!.at} ms`);
    // The history of real failures travels on through deferrals, not crowded out by them.
    for (const s of seen.slice(1))
      assert.deepEqual(
        s.history.map((e) => [e.attempt, e.code, e.message]),
        [[1, 'UNAVAILABLE', 'kms down']],
      );
    await waitFor(async () => (await depth(vhost, 'prov.events')) === 0, { what: 'the work queue empty' });
    assert.equal(await depth(vhost, 'prov.delay.200'), 0);
    assert.equal(await depth(vhost, 'prov.events.dlq'), 0, 'nothing dead-lettered');
  });

  it('should not count deferrals towards maxAttempts: real failures still get every attempt, then the dead letter has their history', async () => {
    const b = broker(vhost, topology);
    const attempts: number[] = [];
    b.handleEvents('prov.events', {
      'kyc.approved': async (_input, ctx) => {
        attempts.push(ctx.attempt);
        // More deferrals than the queue has attempts: an outage must not use them up.
        if (attempts.length <= 4) throw defer(breakerOpen(), { delayMs: 20, jitter: 0.5 });
        throw FleetError.retryable(ErrorCode.UNAVAILABLE, `wallet service timed out (try ${ctx.attempt})`);
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-outage' }, { messageId: 'm-outage' });
    await waitFor(async () => (await depth(vhost, 'prov.events.dlq')) === 1, { what: 'the dead letter' });
    const [m] = await takeAll(vhost, 'prov.events.dlq');

    assert.deepEqual(attempts, [1, 1, 1, 1, 1, 2, 3]);
    const h = m!.properties.headers!;
    assert.equal(m!.properties.messageId, 'm-outage');
    assert.equal(text(h[Headers.deathReason]), 'attempts_exhausted');
    assert.equal(text(h[Headers.originalRoutingKey]), 'kyc.approved');
    const history = JSON.parse(text(h[Headers.errorHistory])) as Array<{ attempt: number; message: string }>;
    assert.deepEqual(
      history.map((e) => [e.attempt, e.message]),
      [1, 2, 3].map((n) => [n, `wallet service timed out (try ${n})`]),
    );
  });

  it('should treat a deferral on a queue without retries as the failure it carries', async () => {
    const once = defineTopology({
      queues: [
        {
          name: 'once.events',
          kind: 'events',
          bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }],
          retry: { maxAttempts: 1, initialDelayMs: 10, maxDelayMs: 10 },
        },
      ],
    });
    const b = broker(vhost, once);
    let calls = 0;
    b.handleEvents('once.events', {
      'kyc.approved': async () => {
        calls++;
        throw defer(breakerOpen(), { delayMs: 10 });
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-once' });
    await waitFor(async () => (await depth(vhost, 'once.events.dlq')) === 1, { what: 'the dead letter' });
    const [m] = await takeAll(vhost, 'once.events.dlq');
    assert.equal(calls, 1);
    assert.equal(text(m!.properties.headers![Headers.errorCode]), 'UNAVAILABLE');
    assert.equal(text(m!.properties.headers![Headers.deathReason]), 'attempts_exhausted');
  });
});
