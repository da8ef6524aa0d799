// Re-checks of recent credits against a real anvil and webhooks service: they come after the open
// work with their own budget (they never take its place), a credit that stands is counted as
// standing (not as settled by someone else), and the pass's audit event carries every count.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type Anvil, startAnvil } from '@wallet-fleet/dev-runtimes';
import { createSchemaName, type TestSchema, waitFor } from '@wallet-fleet/testing';
import { createTestClient, createWalletClient, getAddress, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { deliver, type Harness, silent, startHarness } from '../../webhooks/test/support.js';
import type { DepositTally } from '../src/handlers/pass.js';
import { testReconciliation } from './support.js';

// anvil's first dev account (public, funded with 10,000 ETH on every anvil).
const ANVIL_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('reconciliation: re-checks of recent credits beside the open work', function () {
  this.timeout(90_000);
  let anvil: Anvil;
  let h: Harness;
  let rcSchema: TestSchema;
  const audits: Array<{ routingKey: string; body: any }> = [];

  before(async () => {
    anvil = await startAnvil({ port: 0 });
    h = await startHarness({
      EVM_RPC_URL: anvil.url,
      // Final at 2 confirmations (credits re-checked within the window); two quick attempts, then the
      // job is dead-lettered and a deposit still confirming is left to reconciliation.
      EVM_FINALITY: '2',
      DEPOSIT_MAX_ATTEMPTS: '2',
    });
    rcSchema = await createSchemaName('reconciliation');
    const ch = await h.events.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'wallet.events', 'audit.reconciliation.#');
    await ch.consume(q.queue, (m) => m && audits.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }), { noAck: true });
  });
  after(async () => {
    await h?.stop();
    await rcSchema?.drop();
    await anvil?.stop();
  });

  const payer = () => createWalletClient({ account: privateKeyToAccount(ANVIL_KEY), chain: foundry, transport: http(anvil.url) });
  const mine = (blocks: number) => createTestClient({ chain: foundry, mode: 'anvil', transport: http(anvil.url) }).mine({ blocks });
  const row = async (id: string) => (await h.db.query('SELECT status, attempts FROM deposits WHERE deposit_id = $1', [id])).rows[0];
  async function deposit(value: bigint): Promise<string> {
    const to = getAddress(`0x${randomBytes(20).toString('hex')}`);
    await h.registerWallet('ETH', to);
    const txHash = await payer().sendTransaction({ to, value });
    const res = await deliver(h, { body: { chain: 'ETH', txHash, token: 'native', amount: String(value), toAddress: to } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.jobId as string;
  }

  it('should do the open work first within its budget, then re-check credits within theirs, counting those that stand', async () => {
    // Three credits, older than the deposit left open below (the listing is oldest first).
    for (const value of [1_001n, 1_002n, 1_003n]) {
      const id = await deposit(value);
      await mine(2);
      await waitFor(async () => (await row(id)).status === 'credited', { what: `credit ${value}` });
    }
    // One block only: confirming through both of its attempts, then left open in the table.
    const open = await deposit(2_000n);
    await waitFor(
      async () => {
        const r = await row(open);
        return r.status === 'confirming' && r.attempts.length === 2;
      },
      { what: 'both attempts spent while confirming' },
    );
    await mine(1);

    const rc = testReconciliation(h.vhost.as('reconciliation'), rcSchema.env, silent, {
      OUTBOX_SCHEMAS: '',
      RECONCILE_MAX_PER_PASS: '1',
      RECONCILE_MAX_RECHECKS_PER_PASS: '2',
    });
    await rc.start();
    try {
      const r = await rc.runPass();
      assert.ok('report' in r && !('error' in r.report.deposits), JSON.stringify(r));
      const t = r.report.deposits as DepositTally;
      assert.equal((await row(open)).status, 'credited', 'the open deposit is not starved by the re-checks');
      assert.deepEqual([t.checked, t.credited, t.rechecked, t.standing, t.alreadySettled, t.reversed, t.truncated], [1, 1, 2, 2, 0, 0, true]);
      const event = await waitFor(() => audits.find((e) => e.routingKey === 'audit.reconciliation.pass' && e.body.resource.id === r.runId), {
        what: 'audit event of the pass',
      });
      assert.deepEqual(event.body.after.deposits, JSON.parse(JSON.stringify(t)), 'every count, reversed and unlisted included');
      const metrics = await (await fetch(`http://127.0.0.1:${rc.port()}/metrics`)).text();
      assert.match(metrics, /reconciliation_deposits_total\{result="standing"[^}]*\} 2/);
    } finally {
      await rc.stop();
    }
  });
});
