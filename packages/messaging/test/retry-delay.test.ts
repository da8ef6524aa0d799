import assert from 'node:assert/strict';
import { computeRetryDelay } from '@wallet-fleet/messaging';

describe('messaging: computeRetryDelay', () => {
  const policy = { initialDelayMs: 1000, maxDelayMs: 60_000, factor: 2, jitter: 0 };

  it('should start at initialDelayMs and grow by the factor per attempt', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((a) => computeRetryDelay(a, policy)),
      [1000, 2000, 4000, 8000],
    );
    assert.equal(computeRetryDelay(3, { ...policy, factor: 3 }), 9000);
  });

  it('should never exceed maxDelayMs, even for huge attempt numbers or with jitter', () => {
    assert.equal(computeRetryDelay(7, policy), 60_000);
    assert.equal(computeRetryDelay(5000, policy), 60_000);
    assert.equal(
      computeRetryDelay(7, { ...policy, jitter: 0.5 }, () => 0.999),
      60_000,
    );
  });

  it('should spread the delay by at most ±jitter', () => {
    const p = { ...policy, jitter: 0.2 };
    assert.equal(
      computeRetryDelay(2, p, () => 0),
      1600,
    );
    assert.equal(
      computeRetryDelay(2, p, () => 0.5),
      2000,
    );
    assert.equal(
      computeRetryDelay(2, p, () => 1),
      2400,
    );
    for (let i = 0; i < 500; i++) {
      const d = computeRetryDelay(3, p);
      assert.ok(d >= 3200 && d <= 4800, `${d} within 4000 ± 20 %`);
    }
  });

  it('should default to factor 2 and jitter 0.2', () => {
    assert.equal(
      computeRetryDelay(3, { initialDelayMs: 100, maxDelayMs: 10_000 }, () => 0.5),
      400,
    );
    assert.equal(
      computeRetryDelay(3, { initialDelayMs: 100, maxDelayMs: 10_000 }, () => 0),
      320,
    );
  });

  it('should reject attempt numbers below 1 and nonsensical policies', () => {
    assert.throws(() => computeRetryDelay(0, policy), RangeError);
    assert.throws(() => computeRetryDelay(1.5, policy), RangeError);
    assert.throws(() => computeRetryDelay(1, { ...policy, jitter: 2 }), RangeError);
    assert.throws(() => computeRetryDelay(1, { ...policy, factor: 0.5 }), RangeError);
  });
});
