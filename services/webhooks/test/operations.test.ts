import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { isFleetError } from '@wallet-fleet/contracts';
import type { Broker } from '@wallet-fleet/messaging';
import { waitFor } from '@wallet-fleet/testing';
import { deliver, type Harness, startHarness } from './support.js';

describe('webhooks operations: wallet.deposits.stuck / reconcile / summary', function () {
  this.timeout(60_000);
  let h: Harness;
  let client: Broker;
  const jobs: string[] = [];

  before(async () => {
    // The chain RPC is down: deliveries stay pending (their one attempt fails, then the DLQ).
    h = await startHarness({ SOLANA_RPC_URL: 'http://127.0.0.1:1', EVM_RPC_URL: 'http://127.0.0.1:1', DEPOSIT_MAX_ATTEMPTS: '1' });
    client = await h.as('ops');
    const address = `0x${randomBytes(20).toString('hex')}`;
    await (await h.as('wallet')).publishEvent('wallet.created', {
      walletId: randomUUID(),
      userId: 'u-ops',
      chain: 'ETH',
      address,
      label: null,
      isActive: true,
      createdAt: new Date().toISOString(),
    });
    await waitFor(async () => (await h.db.query('SELECT 1 FROM known_addresses WHERE address = $1', [address])).rowCount === 1);
    for (let i = 0; i < 5; i++) {
      const res = await deliver(h, {
        body: { chain: 'ETH', txHash: `0x${randomBytes(32).toString('hex')}`, token: 'native', amount: String(i + 1), toAddress: address },
      });
      assert.equal(res.status, 200);
      jobs.push(res.body.jobId);
    }
  });
  after(async () => {
    await h?.stop();
  });

  it('should page through pending deposits oldest first with a cursor', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 5; page++) {
      const r = await client.request('wallet.deposits.stuck', { olderThanSeconds: 0, limit: 2, ...(after ? { after } : {}) });
      seen.push(...r.deposits.map((d) => d.depositId));
      if (!r.next) break;
      after = r.next;
    }
    assert.deepEqual(seen, jobs);
    const young = await client.request('wallet.deposits.stuck', { olderThanSeconds: 3600 });
    assert.deepEqual(young.deposits, []);
  });

  it('should refuse a cursor it did not make, and an unknown deposit, with codes', async () => {
    await assert.rejects(
      client.request('wallet.deposits.stuck', { olderThanSeconds: 0, after: 'bm90LWEtY3Vyc29y' }),
      (e: unknown) => isFleetError(e) && e.code === 'VALIDATION_FAILED',
    );
    await assert.rejects(
      client.request('wallet.deposits.reconcile', { depositId: randomUUID(), maxAgeSeconds: 60 }),
      (e: unknown) => isFleetError(e) && e.code === 'NOT_FOUND',
    );
    await assert.rejects(
      client.request('wallet.deposits.reconcile', { depositId: 'nope', maxAgeSeconds: 60 } as never),
      (e: unknown) => isFleetError(e) && e.code === 'VALIDATION_FAILED',
    );
  });

  it('should answer UNAVAILABLE and change nothing while the chain cannot be asked, then count by status', async () => {
    await assert.rejects(
      client.request('wallet.deposits.reconcile', { depositId: jobs[0]!, maxAgeSeconds: 1 }),
      (e: unknown) => isFleetError(e) && e.code === 'UNAVAILABLE' && e.retryable,
    );
    const row = (await h.db.query('SELECT status, attempts FROM deposits WHERE deposit_id = $1', [jobs[0]])).rows[0];
    assert.equal(row.status, 'pending');
    assert.equal(row.attempts.at(-1).by, 'reconciliation');
    const s = await client.request('wallet.deposits.summary', {});
    assert.deepEqual(s.byStatus, { pending: 5, confirming: 0, credited: 0, failed: 0, rejected: 0, unlisted: 0, reversed: 0 });
    assert.deepEqual(s.drift, { creditedWithoutLedgerEntry: 0, ledgerEntryWithoutCredit: 0, ledgerAmountMismatch: 0, reversedWithoutCompensation: 0 });
    assert.deepEqual(s.assets, []);
    assert.ok(s.oldestPendingAt && Date.parse(s.oldestPendingAt) <= Date.now());
  });
});
