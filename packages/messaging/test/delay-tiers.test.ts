import assert from 'node:assert/strict';
import { ErrorCode, Exchanges, FleetError } from '@wallet-fleet/contracts';
import { rabbitAdmin, waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defer, defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost } from './support.js';

// Two event queues of one service, both bound to kyc.approved; one tier far longer than the other.
const topology = defineTopology({
  queues: [
    {
      name: 'prov.events',
      kind: 'events',
      bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }],
      retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 100, jitter: 0 },
    },
    { name: 'prov.audit', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] },
  ],
  delayTiers: [100, 4000],
});

describe('messaging: shared delay tiers', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should bring a short retry back before a longer deferral that waits in another tier, each copy to its own queue only', async () => {
    const b = broker(vhost, topology);
    const seen: Array<{ user: string; attempt: number; at: number }> = [];
    const other: string[] = [];
    b.handleEvents('prov.events', {
      'kyc.approved': async (input, ctx) => {
        seen.push({ user: input.userId, attempt: ctx.attempt, at: Date.now() });
        if (input.userId === 'long' && seen.filter((s) => s.user === 'long').length === 1)
          throw defer(new FleetError(ErrorCode.UNAVAILABLE, 'breaker open'), { delayMs: 4000, jitter: 0 });
        if (input.userId === 'short' && ctx.attempt === 1) throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'try again');
      },
    });
    b.handleEvents('prov.audit', { 'kyc.approved': async (input) => void other.push(input.userId) });
    await b.start();
    const t0 = Date.now();
    // The long one first: in one shared queue with per-message TTLs the short one would wait behind it.
    await b.publishEvent('kyc.approved', { userId: 'long' });
    await waitFor(() => seen.length === 1, { what: 'the long one deferred' });
    await b.publishEvent('kyc.approved', { userId: 'short' });
    await waitFor(() => seen.filter((s) => s.user === 'short').length === 2, { what: 'the short one retried' });
    const shortBack = seen.filter((s) => s.user === 'short')[1]!;
    assert.ok(shortBack.at - t0 < 3000, `the retry came back after ${shortBack.at - t0} ms, not behind the 4 s deferral`);
    assert.equal(shortBack.attempt, 2);
    assert.equal(seen.filter((s) => s.user === 'long').length, 1, 'the deferred one still waits');
    await waitFor(() => seen.filter((s) => s.user === 'long').length === 2, { timeoutMs: 10_000, what: 'the long one back' });
    assert.ok(seen.filter((s) => s.user === 'long')[1]!.at - t0 >= 3990, 'the deferral waited its tier');
    // The other queue of the service got each event once: copies come back to their own queue only.
    await waitFor(async () => (await depth(vhost, 'prov.events')) === 0, { what: 'the work queue empty' });
    assert.deepEqual(other.sort(), ['long', 'short']);
    // Two tier queues for the service, whatever the number of queues and attempts.
    const names = (await rabbitAdmin.queues(vhost.vhost)).map((q) => q.name).filter((n) => n.includes('.delay.'));
    assert.deepEqual(names.sort(), ['prov.delay.100', 'prov.delay.4000']);
  });
});
