// Reorganisations against a real anvil: a credit made at N confirmations is reversed only when two
// re-checks apart agree that its transfer left the chain, and credited again (once) when the same
// transfer is mined again; a credit made at the chain's own finality is never reversed on a node's
// word nor re-checked; an attempt that meets a chain RPC failure keeps the status the deposit has
// now, not the one read before.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { type Anvil, startAnvil } from '@wallet-fleet/dev-runtimes';
import { type Broker, createOutbox } from '@wallet-fleet/messaging';
import { waitFor } from '@wallet-fleet/testing';
import { createPublicClient, createTestClient, createWalletClient, getAddress, type Hex, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { createChainChecker } from '../src/chain-check.js';
import { createDepositAttempt } from '../src/handlers/processing.js';
import { createDepositStore } from '../src/store/deposit-store.js';
import { deliver, type Harness, silent, startHarness } from './support.js';

// anvil's first dev account (public, funded with 10,000 ETH on every anvil).
const ANVIL_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const EVM_CONFIRMATIONS = 3;
// anvil keeps its `finalized` block tag 64 blocks behind its head.
const ANVIL_FINALITY_DEPTH = 64;

describe('webhooks deposits across reorganisations', function () {
  this.timeout(90_000);
  let anvil: Anvil;
  /** Final at N confirmations; a miss is confirmed by any later re-check. */
  let h: Harness;
  /** Final at the node's `finalized` tag. */
  let fin: Harness;
  let ops: Broker;
  let finOps: Broker;
  const dev = privateKeyToAccount(ANVIL_KEY);
  const wallet = () => createWalletClient({ account: dev, chain: foundry, transport: http(anvil.url) });
  const node = () => createTestClient({ chain: foundry, mode: 'anvil', transport: http(anvil.url) });
  const reader = () => createPublicClient({ chain: foundry, transport: http(anvil.url) });
  const mine = (blocks: number) => node().mine({ blocks });

  before(async () => {
    anvil = await startAnvil({ port: 0 });
    const common = { EVM_RPC_URL: anvil.url, DEPOSIT_MAX_ATTEMPTS: '25', DEPOSIT_RETRY_INITIAL_MS: '50', DEPOSIT_RETRY_MAX_MS: '200' };
    h = await startHarness({ ...common, EVM_FINALITY: String(EVM_CONFIRMATIONS), DEPOSIT_REVERSE_AFTER_SECONDS: '0' });
    fin = await startHarness({ ...common, EVM_FINALITY: 'finalized', DEPOSIT_REVERSE_AFTER_SECONDS: '0' });
    [ops, finOps] = [await h.as('ops'), await fin.as('ops')];
  });
  after(async () => {
    await h?.stop();
    await fin?.stop();
    await anvil?.stop();
  });

  const evmAddress = () => getAddress(`0x${randomBytes(20).toString('hex')}`);
  const status = async (x: Harness, id: string): Promise<string> =>
    (await x.db.query('SELECT status FROM deposits WHERE deposit_id = $1', [id])).rows[0].status;
  const settled = (x: Harness, id: string) =>
    waitFor(
      async () => {
        const s = await status(x, id);
        return s !== 'pending' && s !== 'confirming' ? s : undefined;
      },
      { what: `deposit ${id} settled` },
    );
  const ledgerOf = async (x: Harness, walletId: string) =>
    (await x.db.query('SELECT deposit_id, kind, amount::text, round FROM ledger WHERE wallet_id = $1 ORDER BY created_at, kind', [walletId])).rows.map((e) => [
      e.deposit_id,
      e.kind,
      e.amount,
      e.round,
    ]);
  async function accepted(x: Harness, body: Record<string, unknown>): Promise<string> {
    const res = await deliver(x, { body });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.jobId as string;
  }
  /** A payment signed once, so that the very same transaction can be mined again after a reorganisation. */
  async function signedPayment(to: Hex, value: bigint): Promise<Hex> {
    return wallet().signTransaction(await wallet().prepareTransactionRequest({ to, value }));
  }
  const send = async (raw: Hex) => {
    const hash = await reader().sendRawTransaction({ serializedTransaction: raw });
    await reader().waitForTransactionReceipt({ hash, pollingInterval: 20 });
    return hash;
  };
  const listed = async (client: Broker, kind: 'open' | 'credits', id: string) =>
    (await client.request('wallet.deposits.stuck', { olderThanSeconds: 0, limit: 1000, kind })).deposits.some((d) => d.depositId === id);

  /**
   * A payment to a new wallet of ours, credited at N confirmations; then the reorganisation: the chain
   * goes back before the transaction and grows past it without it. The raw transaction mines it again.
   */
  async function creditedThenReorganised(value: bigint) {
    const to = evmAddress();
    const w = await h.registerWallet('ETH', to);
    const before = await node().snapshot();
    const raw = await signedPayment(to, value);
    const txHash = await send(raw);
    await mine(EVM_CONFIRMATIONS);
    const claim = { chain: 'ETH', txHash, token: 'native', amount: String(value), toAddress: to };
    const first = await accepted(h, claim);
    assert.equal(await settled(h, first), 'credited');
    assert.ok(await listed(ops, 'credits', first), 'a credit at N confirmations is listed for its re-check');
    assert.ok(!(await listed(ops, 'open', first)), 'and not as open work');
    await node().revert({ id: before });
    await mine(EVM_CONFIRMATIONS + 2);
    return { w, raw, txHash, claim, first };
  }

  it('should reverse a credit only when a second re-check agrees, and credit the transfer again once when it is mined again', async () => {
    const { w, raw, txHash, claim, first } = await creditedThenReorganised(9_000n);
    const miss = await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 });
    assert.deepEqual([miss.status, miss.changed], ['credited', false], 'one answer of one node does not take the money back');
    assert.match(miss.reason ?? '', /no longer on chain; reversed if a re-check/);
    assert.deepEqual(await ledgerOf(h, w.walletId), [[first, 'credit', '9000', 0]]);
    const agreed = await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 });
    assert.deepEqual([agreed.status, agreed.changed], ['reversed', true]);

    // Still gone: a reversal re-checked stands, nothing is re-opened.
    const gone = await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 });
    assert.deepEqual([gone.depositId, gone.status, gone.changed], [first, 'reversed', false]);
    assert.ok(await listed(ops, 'credits', first), 'a recent reversal is listed for its re-check');

    // The same transaction mined again: reconciliation re-opens the claim as a new deposit and credits it.
    assert.equal(await send(raw), txHash);
    await mine(EVM_CONFIRMATIONS);
    const again = await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 });
    assert.notEqual(again.depositId, first);
    assert.deepEqual([again.status, again.changed], ['credited', true]);
    assert.match(again.reason ?? '', /mined again after the reversal/);
    assert.ok(!(await listed(ops, 'credits', first)), 'a reversal whose claim is credited again is not listed any more');

    // The sender announcing it again, and reconciliation asked again, find the standing credit: never twice.
    assert.equal(await accepted(h, claim), again.depositId);
    const twice = await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 });
    assert.deepEqual([twice.depositId, twice.changed], [again.depositId, false]);
    assert.deepEqual(await ledgerOf(h, w.walletId), [
      [first, 'credit', '9000', 0],
      [first, 'reversal', '-9000', 0],
      [again.depositId, 'credit', '9000', 1],
    ]);
    const s = await ops.request('wallet.deposits.summary', {});
    assert.deepEqual(Object.values(s.drift), [0, 0, 0, 0]);
  });

  it('should credit a transfer mined again when its sender announces it again after the reversal', async () => {
    const { w, raw, claim, first } = await creditedThenReorganised(4_200n);
    await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 });
    assert.equal((await ops.request('wallet.deposits.reconcile', { depositId: first, maxAgeSeconds: 3600 })).status, 'reversed');

    await send(raw);
    await mine(EVM_CONFIRMATIONS);
    const [second, same] = await Promise.all([accepted(h, claim), accepted(h, claim)]);
    assert.notEqual(second, first, 'a reversed deposit no longer holds its claim');
    assert.equal(same, second);
    assert.equal(await settled(h, second), 'credited');
    assert.deepEqual(
      (await ledgerOf(h, w.walletId)).map(([id, kind, amount]) => [id, kind, amount]),
      [
        [first, 'credit', '4200'],
        [first, 'reversal', '-4200'],
        [second, 'credit', '4200'],
      ],
    );
  });

  it("should neither re-check nor reverse a credit made at the chain's own finality when a node says its transaction is gone", async () => {
    const to = evmAddress();
    const w = await fin.registerWallet('ETH', to);
    const before = await node().snapshot();
    const txHash = await send(await signedPayment(to, 5_500n));
    await mine(ANVIL_FINALITY_DEPTH + 1);
    const id = await accepted(fin, { chain: 'ETH', txHash, token: 'native', amount: '5500', toAddress: to });
    assert.equal(await settled(fin, id), 'credited');
    assert.ok(!(await listed(finOps, 'credits', id)), 'a finalized credit is not re-checked by reconciliation');

    // A node that no longer has the transaction (here: anvil reverted past its own finalized block).
    await node().revert({ id: before });
    await mine(ANVIL_FINALITY_DEPTH + 2);
    for (let i = 0; i < 2; i++) {
      const r = await finOps.request('wallet.deposits.reconcile', { depositId: id, maxAgeSeconds: 3600 });
      assert.deepEqual([r.status, r.changed], ['credited', false]);
      assert.match(r.reason ?? '', /not reversed on a node's word/);
    }
    assert.equal(await status(fin, id), 'credited');
    assert.deepEqual(await ledgerOf(fin, w.walletId), [[id, 'credit', '5500', 0]]);
    const log = (await fin.db.query('SELECT attempts FROM deposits WHERE deposit_id = $1', [id])).rows[0].attempts;
    assert.deepEqual(
      log.filter((a: { status: string }) => a.status === 'checked').map((a: { errorCode?: string }) => a.errorCode),
      ['NOT_FOUND'],
      'the miss is recorded once for an operator',
    );
  });

  it('should keep the status a deposit has now when the chain cannot be asked, not the one read before', async () => {
    const to = evmAddress();
    await h.registerWallet('ETH', to);
    const txHash = await send(await signedPayment(to, 3_100n));
    const id = await accepted(h, { chain: 'ETH', txHash, token: 'native', amount: '3100', toAddress: to });
    await waitFor(async () => (await status(h, id)) === 'confirming', { what: 'confirming' });
    // The deposit as it was read while still pending, by an attempt whose chain node is down.
    const store = createDepositStore(h.db, createOutbox({ pool: h.db, schema: h.schema.schema, broker: await h.as('webhooks'), logger: silent }));
    const readBefore = { ...(await store.get(id))!, status: 'pending' as const };
    const attempt = createDepositAttempt({
      store,
      chains: createChainChecker({ solanaRpcUrl: 'http://127.0.0.1:1', evmRpcUrl: 'http://127.0.0.1:1', evmFinality: { confirmations: 3 }, timeoutMs: 500 }),
      tokenAllowlist: new Set(),
    });
    const outcome = await attempt(readBefore, { by: 'reconciliation', attempt: 99, failMissing: false, failUnconfirmed: false });
    assert.deepEqual([outcome.status, 'chainUnavailable' in outcome && outcome.chainUnavailable], ['pending', true]);
    assert.equal(await status(h, id), 'confirming');
    await mine(EVM_CONFIRMATIONS);
    const r = await ops.request('wallet.deposits.reconcile', { depositId: id, maxAgeSeconds: 3600 });
    assert.ok(r.status === 'credited' || (await status(h, id)) === 'credited', 'credited once final, by whichever attempt came first');
  });
});
