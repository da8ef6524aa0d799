// Work done in passes (the stuck-job sweep, the reconciliation schedule, the policy spend pruner):
// passes keep coming after a failure, never overlap, and stop() waits for the one in flight.
import assert from 'node:assert/strict';
import { waitFor } from '@wallet-fleet/testing';
import { createPeriodic } from '../src/index.js';

/** A pass that ends when the test says so. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

describe('periodic passes', () => {
  it('should run pass after pass, the next one also after a pass that failed', async () => {
    let passes = 0;
    const errors: unknown[] = [];
    const p = createPeriodic({
      name: 'test',
      intervalMs: 5,
      initialDelayMs: 0,
      run: async () => {
        passes++;
        if (passes === 2) throw new Error('second pass fails');
        return passes;
      },
      onError: (err) => errors.push(err),
    });
    await p.start();
    try {
      await waitFor(() => passes >= 4, { what: 'four passes' });
      assert.equal(errors.length, 1);
      assert.match(String(errors[0]), /second pass fails/);
    } finally {
      await p.stop();
    }
  });

  it('should never run two passes at once: runOnce joins the pass in flight, and stop() waits for it', async () => {
    let running = 0;
    let most = 0;
    let passes = 0;
    let g = gate();
    const p = createPeriodic({
      name: 'test',
      intervalMs: 5,
      initialDelayMs: 0,
      run: async () => {
        passes++;
        most = Math.max(most, ++running);
        await g.opened;
        running--;
        return passes;
      },
      onError: (err) => assert.fail(String(err)),
    });
    await p.start();
    await waitFor(() => running === 1, { what: 'the first pass' });
    const [a, b] = [p.runOnce(), p.runOnce()];
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    // Let every timer and callback that is due run: the pass is still in flight, and so is stop().
    await new Promise((r) => setImmediate(r));
    assert.equal(stopped, false, 'stop() waits for the pass in flight');
    const last = g;
    g = gate();
    last.open();
    await stopping;
    assert.deepEqual([await a, await b], [1, 1], 'both asks joined the pass in flight');
    assert.equal(most, 1);
    assert.equal(passes, 1);
  });
});
