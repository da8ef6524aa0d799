// Deposits credited by their on-chain identity, against a real anvil and the Solana runtime: one
// transfer is credited once whatever the deliveries claim, a false claim never blocks the true one,
// nothing is credited before finality, tokens are credited per asset (decimals from the chain), a
// credit whose transaction a reorganisation removed is reversed, and the ledger never drifts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ACCOUNT_SIZE,
  MINT_SIZE,
  TOKEN_PROGRAM_ID,
  createInitializeAccount3Instruction,
  createInitializeMint2Instruction,
  createMintToInstruction,
  createTransferCheckedInstruction,
} from '@solana/spl-token';
import {
  ComputeBudgetProgram,
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  type PublicKey,
  SystemProgram,
  Transaction,
  type TransactionInstruction,
} from '@solana/web3.js';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import type { Broker } from '@wallet-fleet/messaging';
import { waitFor } from '@wallet-fleet/testing';
import { createPublicClient, createWalletClient, getAddress, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { TEST_TOKEN_ABI, TEST_TOKEN_BYTECODE } from '../../../packages/chains/test/fixtures/test-token.js';
import { deliver, type Harness, startHarness } from './support.js';

// anvil's first dev account (public, funded with 10,000 ETH on every anvil).
const ANVIL_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
// An EVM transfer is final at 3 confirmations here (anvil's own `finalized` lags 64 blocks).
const EVM_CONFIRMATIONS = 3;

describe('webhooks deposits: credited once per on-chain transfer, after finality, per asset', function () {
  this.timeout(90_000);
  let solana: SolanaRuntime;
  let anvil: Anvil;
  let h: Harness;
  let client: Broker;
  let conn: Connection;
  const payer = Keypair.generate();
  const dev = privateKeyToAccount(ANVIL_KEY);
  const evmWallet = () => createWalletClient({ account: dev, chain: foundry, transport: http(anvil.url) });
  const reader = () => createPublicClient({ chain: foundry, transport: http(anvil.url) });
  let listed: Hex;
  let unlisted: Hex;
  let usdc: { mint: PublicKey; holder: Keypair; source: PublicKey };

  async function evmRpc(method: string, params: unknown[] = []): Promise<unknown> {
    const res = await fetch(anvil.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = (await res.json()) as { result?: unknown; error?: { message: string } };
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  }
  const mine = (blocks: number) => evmRpc('anvil_mine', [`0x${blocks.toString(16)}`]);
  const mined = (hash: Hex) => reader().waitForTransactionReceipt({ hash, pollingInterval: 20 });
  async function deployToken(decimals: number): Promise<Hex> {
    const hash = await evmWallet().deployContract({ abi: TEST_TOKEN_ABI, bytecode: TEST_TOKEN_BYTECODE, args: [decimals, 10n ** 30n] });
    return getAddress((await mined(hash)).contractAddress!);
  }

  async function sendSol(instructions: TransactionInstruction[], signers: Keypair[] = []): Promise<string> {
    const tx = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(...instructions);
    tx.sign(payer, ...signers);
    const signature = await conn.sendRawTransaction(tx.serialize());
    await waitFor(async () => (await conn.getSignatureStatus(signature)).value?.confirmationStatus !== undefined, { what: 'landed' });
    return signature;
  }
  async function newAccount(account: Keypair, space: number): Promise<TransactionInstruction> {
    const lamports = await conn.getMinimumBalanceForRentExemption(space);
    return SystemProgram.createAccount({ fromPubkey: payer.publicKey, newAccountPubkey: account.publicKey, lamports, space, programId: TOKEN_PROGRAM_ID });
  }
  async function tokenAccount(mint: PublicKey, owner: PublicKey): Promise<PublicKey> {
    const account = Keypair.generate();
    await sendSol([await newAccount(account, ACCOUNT_SIZE), createInitializeAccount3Instruction(account.publicKey, mint, owner)], [account]);
    return account.publicKey;
  }

  before(async () => {
    // Solana: a transaction stays `confirmed` for 75 slots (about 1.5 s) before it is `finalized`.
    solana = await startSolanaRuntime({ port: 0, slotMs: 20, finalizeAfterSlots: 75 });
    anvil = await startAnvil({ port: 0 });
    conn = new Connection(solana.url, 'confirmed');
    solana.airdrop(payer.publicKey.toBase58(), 100n * BigInt(LAMPORTS_PER_SOL));
    [listed, unlisted] = [await deployToken(6), await deployToken(6)];
    const mint = Keypair.generate();
    await sendSol([await newAccount(mint, MINT_SIZE), createInitializeMint2Instruction(mint.publicKey, 6, payer.publicKey, null)], [mint]);
    const holder = Keypair.generate();
    const source = await tokenAccount(mint.publicKey, holder.publicKey);
    await sendSol([createMintToInstruction(mint.publicKey, source, payer.publicKey, 10n ** 12n)]);
    usdc = { mint: mint.publicKey, holder, source };
    await mine(EVM_CONFIRMATIONS);
    h = await startHarness({
      SOLANA_RPC_URL: solana.url,
      EVM_RPC_URL: anvil.url,
      EVM_FINALITY: String(EVM_CONFIRMATIONS),
      DEPOSIT_TOKEN_ALLOWLIST: `ETH:${listed},SOL:${usdc.mint.toBase58()}`,
      // Enough attempts to outlast finality (confirming is retried with backoff).
      DEPOSIT_MAX_ATTEMPTS: '25',
      DEPOSIT_RETRY_INITIAL_MS: '50',
      DEPOSIT_RETRY_MAX_MS: '200',
      // A reversal needs a second re-check that agrees; here any later one does.
      DEPOSIT_REVERSE_AFTER_SECONDS: '0',
    });
    // Operators ask the deposit operations.
    client = await h.as('ops');
  });
  after(async () => {
    await h?.stop();
    await anvil?.stop();
    await solana?.stop();
  });

  const registerWallet = (chain: 'SOL' | 'ETH', address: string) => h.registerWallet(chain, address);
  const evmAddress = () => getAddress(`0x${randomBytes(20).toString('hex')}`);
  const status = async (id: string): Promise<string> => (await h.db.query('SELECT status FROM deposits WHERE deposit_id = $1', [id])).rows[0].status;
  const settled = (id: string) =>
    waitFor(
      async () => {
        const s = await status(id);
        return s !== 'pending' && s !== 'confirming' ? s : undefined;
      },
      { what: `deposit ${id} settled` },
    );
  const ledgerOf = async (walletId: string) =>
    (await h.db.query('SELECT deposit_id, kind, amount::text, asset, decimals FROM ledger WHERE wallet_id = $1 ORDER BY created_at, kind', [walletId])).rows;
  async function accepted(body: Record<string, unknown>): Promise<string> {
    const res = await deliver(h, { body });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.jobId as string;
  }

  it('should credit one ETH transfer once, whatever five deliveries naming other eventIndex values say', async () => {
    const to = evmAddress();
    const wallet = await registerWallet('ETH', to);
    const txHash = await evmWallet().sendTransaction({ to, value: 10n ** 15n });
    await mine(EVM_CONFIRMATIONS);
    const claim = { chain: 'ETH', txHash, token: 'native', amount: String(10n ** 15n), toAddress: to };
    const wrong = await Promise.all([1, 2, 3, 4, 5].map((eventIndex) => accepted({ ...claim, eventIndex })));
    const right = await accepted({ ...claim, eventIndex: 0 });
    assert.deepEqual(await Promise.all(wrong.map(settled)), ['failed', 'failed', 'failed', 'failed', 'failed']);
    assert.equal(await settled(right), 'credited');
    assert.deepEqual(await ledgerOf(wallet.walletId), [{ deposit_id: right, kind: 'credit', amount: String(10n ** 15n), asset: 'native', decimals: 18 }]);
  });

  it('should credit one Solana transfer once at its instruction index, whatever five other eventIndex values say', async () => {
    const to = Keypair.generate().publicKey;
    const wallet = await registerWallet('SOL', to.toBase58());
    // The transfer is instruction 1: instruction 0 sets the compute budget.
    const txHash = await sendSol([
      ComputeBudgetProgram.setComputeUnitLimit({ units: 200_000 }),
      SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: to, lamports: 3_000_000 }),
    ]);
    const claim = { chain: 'SOL', txHash, token: 'native', amount: '3000000', toAddress: to.toBase58() };
    const wrong = await Promise.all([0, 2, 3, 100, 101].map((eventIndex) => accepted({ ...claim, eventIndex })));
    const right = await accepted({ ...claim, eventIndex: 1 });
    assert.deepEqual(await Promise.all(wrong.map(settled)), ['failed', 'failed', 'failed', 'failed', 'failed']);
    assert.equal(await settled(right), 'credited');
    assert.deepEqual(await ledgerOf(wallet.walletId), [{ deposit_id: right, kind: 'credit', amount: '3000000', asset: 'native', decimals: 9 }]);
  });

  it('should fail a false claim that arrives first and credit the true one for the same transfer', async () => {
    const to = evmAddress();
    const wallet = await registerWallet('ETH', to);
    const txHash = await evmWallet().sendTransaction({ to, value: 5000n });
    await mine(EVM_CONFIRMATIONS);
    const claim = { chain: 'ETH', txHash, token: 'native', eventIndex: 0, toAddress: to };
    const lie = await accepted({ ...claim, amount: '50000' });
    assert.equal(await settled(lie), 'failed');
    const truth = await accepted({ ...claim, amount: '5000' });
    assert.notEqual(truth, lie);
    assert.equal(await settled(truth), 'credited');
    const failed = (await h.db.query('SELECT attempts FROM deposits WHERE deposit_id = $1', [lie])).rows[0].attempts.at(-1);
    assert.match(failed.message, /moves 5000, not 50000/);
    assert.deepEqual(
      (await ledgerOf(wallet.walletId)).map((e) => [e.deposit_id, e.amount]),
      [[truth, '5000']],
    );
  });

  it('should keep a deposit confirming, not credited, until its block has the configured confirmations', async () => {
    const to = evmAddress();
    const wallet = await registerWallet('ETH', to);
    const txHash = await evmWallet().sendTransaction({ to, value: 777n });
    await mined(txHash);
    const id = await accepted({ chain: 'ETH', txHash, token: 'native', amount: '777', toAddress: to });
    await waitFor(async () => (await status(id)) === 'confirming', { what: 'confirming' });
    const stuck = await client.request('wallet.deposits.stuck', { olderThanSeconds: 0, limit: 1000 });
    assert.ok(
      stuck.deposits.some((d) => d.depositId === id),
      'a confirming deposit is listed for reconciliation',
    );
    assert.deepEqual(await ledgerOf(wallet.walletId), []);
    await mine(EVM_CONFIRMATIONS - 1);
    assert.equal(await settled(id), 'credited');
    assert.equal((await ledgerOf(wallet.walletId)).length, 1);
  });

  it('should credit a Solana deposit only once the node finalizes it', async () => {
    const to = Keypair.generate().publicKey.toBase58();
    const wallet = await registerWallet('SOL', to);
    const txHash = solana.airdrop(to, 4_000_000n);
    const id = await accepted({ chain: 'SOL', txHash, token: 'native', amount: '4000000', toAddress: to });
    assert.equal(await settled(id), 'credited');
    const { attempts } = (await h.db.query('SELECT attempts FROM deposits WHERE deposit_id = $1', [id])).rows[0];
    // Seen confirming (and not credited) first; the one ledger entry is from the final attempt.
    assert.equal(attempts[0].status, 'confirming');
    assert.equal(attempts.at(-1).status, 'credited');
    assert.equal((await ledgerOf(wallet.walletId)).length, 1);
  });

  it('should credit each ERC-20 Transfer log of a batch to its own wallet once, with decimals from the contract', async () => {
    const [a, b] = [evmAddress(), evmAddress()];
    const [wa, wb] = [await registerWallet('ETH', a), await registerWallet('ETH', b)];
    // Logs: Note (0), Transfer to a (1), Transfer to b (2), Transfer to a (3), Note (4).
    const txHash = await evmWallet().writeContract({
      address: listed,
      abi: TEST_TOKEN_ABI,
      functionName: 'batchTransfer',
      args: [
        [a, b, a],
        [1_500_000n, 2_000_000n, 250_000n],
      ],
    });
    await mined(txHash);
    await mine(EVM_CONFIRMATIONS);
    const claims = [
      { eventIndex: 1, amount: '1500000', toAddress: a },
      { eventIndex: 2, amount: '2000000', toAddress: b },
      { eventIndex: 3, amount: '250000', toAddress: a },
    ].map((c) => ({ chain: 'ETH', txHash, token: listed.toLowerCase(), ...c }));
    // Each announced twice, and once more at an index where a Note is.
    const ids = await Promise.all([...claims, ...claims].map(accepted));
    const note = await accepted({ ...claims[0]!, eventIndex: 0 });
    assert.deepEqual(await Promise.all(ids.slice(0, 3).map(settled)), ['credited', 'credited', 'credited']);
    assert.deepEqual(ids.slice(3), ids.slice(0, 3), 'the same claim again is the same job');
    assert.equal(await settled(note), 'failed');
    assert.deepEqual(
      (await ledgerOf(wa.walletId)).map((e) => [e.amount, e.asset, e.decimals]).sort(),
      [
        ['1500000', listed, 6],
        ['250000', listed, 6],
      ].sort(),
    );
    assert.deepEqual(
      (await ledgerOf(wb.walletId)).map((e) => [e.amount, e.asset, e.decimals]),
      [['2000000', listed, 6]],
    );
  });

  it('should record, not credit, a final transfer of a token outside the allow-list', async () => {
    const to = evmAddress();
    const wallet = await registerWallet('ETH', to);
    const txHash = await evmWallet().writeContract({ address: unlisted, abi: TEST_TOKEN_ABI, functionName: 'transfer', args: [to, 42n] });
    await mined(txHash);
    await mine(EVM_CONFIRMATIONS);
    const id = await accepted({ chain: 'ETH', txHash, token: unlisted, amount: '42', toAddress: to, eventIndex: 0 });
    assert.equal(await settled(id), 'unlisted');
    assert.deepEqual(await ledgerOf(wallet.walletId), []);
    const row = (await h.db.query('SELECT asset, decimals FROM deposits WHERE deposit_id = $1', [id])).rows[0];
    assert.deepEqual(row, { asset: unlisted, decimals: 6 });
    // Reconciled while the token is still not listed: it stays unlisted, still nothing credited.
    const r = await client.request('wallet.deposits.reconcile', { depositId: id, maxAgeSeconds: 3600 });
    assert.deepEqual([r.status, r.changed], ['unlisted', false]);
    assert.deepEqual(await ledgerOf(wallet.walletId), []);
  });

  it("should credit a USDC-like SPL transfer once to the wallet owning the token account, with the mint's 6 decimals", async () => {
    const owner = Keypair.generate().publicKey;
    const wallet = await registerWallet('SOL', owner.toBase58());
    const destination = await tokenAccount(usdc.mint, owner);
    const txHash = await sendSol([createTransferCheckedInstruction(usdc.source, usdc.mint, destination, usdc.holder.publicKey, 12_500_000n, 6)], [usdc.holder]);
    const claim = { chain: 'SOL', txHash, token: usdc.mint.toBase58(), amount: '12500000', toAddress: owner.toBase58(), eventIndex: 0 };
    const [id, again] = await Promise.all([accepted(claim), accepted(claim)]);
    assert.equal(again, id);
    // The SOL side of the same index is another transfer (there is none): a claim for it fails.
    const native = await accepted({ ...claim, token: 'native' });
    assert.equal(await settled(id), 'credited');
    assert.equal(await settled(native), 'failed');
    assert.deepEqual(await ledgerOf(wallet.walletId), [{ deposit_id: id, kind: 'credit', amount: '12500000', asset: usdc.mint.toBase58(), decimals: 6 }]);
  });

  it('should reverse a credit whose transaction a reorganisation removed, with a compensating entry, an audit event and the alert metric', async () => {
    const to = evmAddress();
    const wallet = await registerWallet('ETH', to);
    const snapshot = await evmRpc('evm_snapshot');
    const txHash = await evmWallet().sendTransaction({ to, value: 9_000n });
    await mined(txHash);
    const id = await accepted({ chain: 'ETH', txHash, token: 'native', amount: '9000', toAddress: to });
    await waitFor(async () => (await status(id)) === 'confirming', { what: 'confirming' });
    assert.deepEqual(await ledgerOf(wallet.walletId), [], 'nothing credited before finality');
    await mine(EVM_CONFIRMATIONS);
    assert.equal(await settled(id), 'credited');

    // The reorganisation: the chain goes back before the transaction and grows past it without it.
    await evmRpc('evm_revert', [snapshot]);
    await mine(EVM_CONFIRMATIONS + 2);
    const stuck = await client.request('wallet.deposits.stuck', { olderThanSeconds: 3600, limit: 1000 });
    assert.ok(
      stuck.deposits.some((d) => d.depositId === id),
      'a recent credit is listed for its re-check',
    );
    const miss = await client.request('wallet.deposits.reconcile', { depositId: id, maxAgeSeconds: 3600 });
    assert.deepEqual([miss.status, miss.changed], ['credited', false], 'not reversed on a single answer');
    const r = await client.request('wallet.deposits.reconcile', { depositId: id, maxAgeSeconds: 3600 });
    assert.deepEqual([r.status, r.changed], ['reversed', true]);
    assert.match(r.reason ?? '', /no longer on chain/);
    const entries = await ledgerOf(wallet.walletId);
    assert.deepEqual(
      entries.map((e) => [e.deposit_id, e.kind, e.amount]),
      [
        [id, 'credit', '9000'],
        [id, 'reversal', '-9000'],
      ],
    );
    // Asked again: nothing more.
    const again = await client.request('wallet.deposits.reconcile', { depositId: id, maxAgeSeconds: 3600 });
    assert.deepEqual([again.status, again.changed], ['reversed', false]);
    assert.equal((await ledgerOf(wallet.walletId)).length, 2);
    await waitFor(() => h.seen.find((m) => m.routingKey === 'deposit.reversed' && m.body.depositId === id), { what: 'deposit.reversed' });
    await waitFor(() => h.seen.find((m) => m.routingKey === 'audit.webhooks.deposit.reverse' && m.body.resource.id === id), { what: 'audit event' });
    const metrics = await (await fetch(`${h.base}/metrics`)).text();
    assert.match(metrics, /webhooks_deposits_reversed_total\{chain="ETH"[^}]*\} 1/);
  });

  it('should report the ledger per asset with no drift after all of the above', async () => {
    const s = await client.request('wallet.deposits.summary', {});
    assert.deepEqual(s.drift, { creditedWithoutLedgerEntry: 0, ledgerEntryWithoutCredit: 0, ledgerAmountMismatch: 0, reversedWithoutCompensation: 0 });
    const byAsset = (x: unknown[], y: unknown[]) => `${x[0]}:${x[1]}`.localeCompare(`${y[0]}:${y[1]}`);
    assert.deepEqual(
      s.assets.map((a) => [a.chain, a.asset, a.decimals, a.credits, a.credited, a.reversals, a.reversed, a.balance]).sort(byAsset),
      [
        ['ETH', listed, 6, 3, '3750000', 0, '0', '3750000'],
        ['ETH', 'native', 18, 4, String(10n ** 15n + 5000n + 777n + 9000n), 1, '9000', String(10n ** 15n + 5000n + 777n)],
        ['SOL', usdc.mint.toBase58(), 6, 1, '12500000', 0, '0', '12500000'],
        ['SOL', 'native', 9, 2, '7000000', 0, '0', '7000000'],
      ].sort(byAsset),
    );
    for (const a of s.assets) assert.deepEqual(Object.values(a.drift), [0, 0, 0, 0], `${a.chain} ${a.asset}`);
    assert.equal(s.byStatus.reversed, 1);
    assert.equal(s.byStatus.unlisted, 1);
  });
});
