// The rolling 24 h caps' bookkeeping against the real database: running totals give the answers a sum
// over the last 24 h would, as spend is reserved, released and leaves the window.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { DailyCap } from '../src/policy/engine.js';
import { createPolicyStore, type PolicyStore } from '../src/store/policy-store.js';
import { migratedWalletSchema } from './support.js';

describe('rolling caps: spend kept as running totals (PostgreSQL)', () => {
  let db: Awaited<ReturnType<typeof migratedWalletSchema>>;
  let owner: pg.Pool;
  let store: PolicyStore;

  before(async () => {
    db = await migratedWalletSchema('wallet_spend');
    owner = db.owner;
    store = createPolicyStore(db.runtime, { enqueue: () => Promise.reject(new Error('no policy is set through this store')) });
  });
  after(async () => {
    await db?.end();
  });

  const cap = (rule: DailyCap['rule'], limit: bigint): DailyCap => ({ rule, scope: 'fleet', scopeId: null, asset: 'SOL', limit });
  const ruleAndUse = (r: Awaited<ReturnType<PolicyStore['reserve']>>) => (typeof r === 'object' ? [r.rule, r.used] : r);
  const epoch = async () => (await store.applicable('nobody', randomUUID())).epoch;

  it('should count what is reserved, give back what is released, and let spend older than 24 h leave the window', async () => {
    const who = { userId: `u-${randomUUID()}`, walletId: randomUUID() };
    const caps = [cap('dailyPerWallet', 100n), cap('dailyPerUser', 100n)];
    const reserve = async (amount: bigint, ref = randomUUID()) => ({
      ref,
      denial: await store.reserve(await epoch(), ref, who, new Map([['SOL', amount]]), caps),
    });
    // Spend recorded before any cap was checked: 25 h old (out of the window) and 23 h old (in it).
    await owner.query(
      `INSERT INTO policy_spend (ref, asset, user_id, wallet_id, amount, created_at)
       VALUES ($1, 'SOL', $3, $4, 60, now() - interval '25 hours'), ($2, 'SOL', $3, $4, 30, now() - interval '23 hours')`,
      [randomUUID(), randomUUID(), who.userId, who.walletId],
    );
    const seventy = await reserve(70n);
    assert.equal(seventy.denial, undefined, '30 in the window + 70 is the cap');
    const one = await reserve(1n);
    assert.deepEqual(ruleAndUse(one.denial), ['dailyPerWallet', '100']);
    await store.release(seventy.ref);
    assert.equal((await reserve(70n)).denial, undefined, 'what a failed signing reserved is given back');
    // Two hours pass: every timestamp moves two hours into the past, the totals' with them.
    await owner.query(`UPDATE policy_spend SET created_at = created_at - interval '2 hours' WHERE wallet_id = $1`, [who.walletId]);
    await owner.query(`UPDATE policy_spend_totals SET counted_after = counted_after - interval '2 hours'`);
    assert.equal((await reserve(30n)).denial, undefined, 'the 30 of 25 h ago left the window');
    const over = await reserve(1n);
    assert.deepEqual(ruleAndUse(over.denial), ['dailyPerWallet', '100']);
  });

  it('should count a retry of the same reservation once, and never let concurrent reservations pass a cap together', async () => {
    const who = { userId: `u-${randomUUID()}`, walletId: randomUUID() };
    const caps = [cap('dailyPerUser', 1000n)];
    const e = await epoch();
    const ref = randomUUID();
    for (let i = 0; i < 3; i++) assert.equal(await store.reserve(e, ref, who, new Map([['SOL', 10n]]), caps), undefined);
    const results = await Promise.all(Array.from({ length: 40 }, () => store.reserve(e, randomUUID(), who, new Map([['SOL', 33n]]), caps)));
    const allowed = results.filter((r) => r === undefined).length;
    assert.equal(allowed, 30, '10 + 30 × 33 = 1000: thirty fit, the rest are refused');
    const { rows } = await owner.query(`SELECT sum(amount)::text AS spent FROM policy_spend WHERE user_id = $1 AND released_at IS NULL`, [who.userId]);
    assert.equal(rows[0].spent, '1000');
  });

  it('should prune spend older than 25 h in batches, and caps checked afterwards count exactly the last 24 h', async () => {
    const who = { userId: `u-${randomUUID()}`, walletId: randomUUID() };
    const caps = [cap('dailyPerWallet', 100n), cap('dailyPerUser', 100n)];
    const reserve = async (amount: bigint) => store.reserve(await epoch(), randomUUID(), who, new Map([['SOL', amount]]), caps);
    // 26 h old rows, unreleased and released; 60 that is 24.5 h old (in no window, too young to
    // prune); 40 in the window; totals last moved 25.5 h ago (they still count the 60).
    await owner.query(
      `INSERT INTO policy_spend (ref, asset, user_id, wallet_id, amount, created_at, released_at)
       SELECT gen_random_uuid()::text, 'SOL', $1, $2, 1, now() - interval '26 hours', CASE WHEN i % 2 = 0 THEN now() END
         FROM generate_series(1, 7) AS i`,
      [who.userId, who.walletId],
    );
    assert.equal(await reserve(60n), undefined);
    assert.equal(await reserve(40n), undefined);
    await owner.query(`UPDATE policy_spend SET created_at = now() - interval '24.5 hours' WHERE wallet_id = $1 AND amount = 60`, [who.walletId]);
    await owner.query(`UPDATE policy_spend_totals SET counted_after = now() - interval '25.5 hours' WHERE who IN ($1, $2::text)`, [who.userId, who.walletId]);
    const rowsOf = async () =>
      (await owner.query(`SELECT amount::int, created_at < now() - interval '25 hours' AS old FROM policy_spend WHERE wallet_id = $1`, [who.walletId])).rows;
    assert.equal((await rowsOf()).length, 9);

    const pruned = await store.pruneSpend(3);
    assert.ok(pruned.rows >= 7, `the seven old rows (and those of other tests) are deleted: ${pruned.rows}`);
    assert.ok(pruned.totals >= 2, 'the wallet and user totals that counted from before the horizon are dropped');
    assert.deepEqual((await rowsOf()).map((r) => r.amount).sort(), [40, 60], 'what is younger than 25 h stays');
    assert.deepEqual(await store.pruneSpend(3), { rows: 0, totals: 0 }, 'a second pass finds nothing');
    // The totals are summed again from the last 24 h: 40 (the 60 left the window).
    assert.equal(await reserve(60n), undefined, '40 + 60 is the cap');
    assert.deepEqual(ruleAndUse(await reserve(1n)), ['dailyPerWallet', '100']);
  });

  it('should answer stale, recording nothing, for rules read before a policy changed', async () => {
    const who = { userId: `u-${randomUUID()}`, walletId: randomUUID() };
    const before = await epoch();
    await owner.query(`INSERT INTO policies (scope, scope_id, rules, version) VALUES ('user', $1, '{}', 1)`, [who.userId]);
    const ref = randomUUID();
    assert.equal(await store.reserve(before, ref, who, new Map([['SOL', 1n]]), []), 'stale');
    assert.equal((await owner.query('SELECT 1 FROM policy_spend WHERE ref = $1', [ref])).rowCount, 0);
    assert.equal(await store.reserve(await epoch(), ref, who, new Map([['SOL', 1n]]), []), undefined);
  });
});
