import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import type { Broker } from '@wallet-fleet/messaging';
import { rabbitAdmin, waitFor } from '@wallet-fleet/testing';
import { Connection, Keypair, LAMPORTS_PER_SOL, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import { createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { deliver, type Harness, startHarness } from './support.js';

// anvil's first dev account (public, funded with 10,000 ETH on every anvil).
const ANVIL_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('webhooks processing: deposits validated on chain and credited once', function () {
  this.timeout(60_000);
  let solana: SolanaRuntime;
  let anvil: Anvil;
  let h: Harness;
  /** Publishes processing messages as an intake process does. */
  let intake: Broker;

  before(async () => {
    solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    anvil = await startAnvil({ port: 0 });
    // anvil has no finality of its own worth waiting for here: one confirmation is final in these tests.
    h = await startHarness({ SOLANA_RPC_URL: solana.url, EVM_RPC_URL: anvil.url, EVM_FINALITY: '1' });
    intake = await h.as('webhooks');
  });
  after(async () => {
    await h?.stop();
    await anvil?.stop();
    await solana?.stop();
  });

  const registerWallet = (chain: 'SOL' | 'ETH', address: string) => h.registerWallet(chain, address);

  async function sendEth(to: string, value: bigint): Promise<Hex> {
    const wallet = createWalletClient({ account: privateKeyToAccount(ANVIL_KEY), transport: http(anvil.url) });
    return wallet.sendTransaction({
      to: to as Hex,
      value,
      chain: { id: 31337, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [anvil.url] } } },
    });
  }

  /** deposit.received messages the service has acked (its own metrics). */
  async function ackedDeposits(): Promise<number> {
    const text = await (await fetch(`${h.base}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith('messaging_consumed_total') && l.includes('queue="webhooks.deposits"') && l.includes('outcome="ack"'));
    return line ? Number(line.split(' ').at(-1)) : 0;
  }

  const job = async (id: string) => (await h.db.query('SELECT status, attempts FROM deposits WHERE deposit_id = $1', [id])).rows[0];
  const credits = async (id: string) => (await h.db.query('SELECT amount::text, wallet_id FROM ledger WHERE deposit_id = $1', [id])).rows;
  const eventsFor = (key: string, id: string) => h.seen.filter((m) => m.routingKey === key && m.body.depositId === id);

  it('should credit SOL airdropped to a fleet wallet once and emit deposit.credited', async () => {
    const address = Keypair.generate().publicKey.toBase58();
    const wallet = await registerWallet('SOL', address);
    const signature = solana.airdrop(address, 2_000_000n);
    const res = await deliver(h, { body: { chain: 'SOL', txHash: signature, token: 'native', amount: '2000000', toAddress: address } });
    assert.equal(res.status, 200);
    const credited = await waitFor(() => eventsFor('deposit.credited', res.body.jobId)[0], { what: 'deposit.credited' });
    assert.equal(credited.body.walletId, wallet.walletId);
    assert.equal(credited.body.amount, '2000000');
    assert.deepEqual(await credits(res.body.jobId), [{ amount: '2000000', wallet_id: wallet.walletId }]);
    const row = await job(res.body.jobId);
    assert.equal(row.status, 'credited');
    assert.equal(row.attempts.at(-1).status, 'credited');
    await waitFor(() => h.seen.some((m) => m.routingKey === 'audit.webhooks.deposit.process' && m.body.resource.id === res.body.jobId), {
      what: 'audit event',
    });
  });

  it('should credit ETH sent on anvil once, whatever 50 concurrent duplicates and a redelivered message do', async () => {
    const address = privateKeyToAccount(`0x${randomBytes(32).toString('hex')}`).address;
    const wallet = await registerWallet('ETH', address);
    const hash = await sendEth(address, 10n ** 15n);
    // The indexer may send the address lower-case; it is still ours.
    const body = { chain: 'ETH' as const, txHash: hash, token: 'native', amount: String(10n ** 15n), toAddress: address.toLowerCase() };
    const answers = await Promise.all(Array.from({ length: 50 }, () => deliver(h, { body })));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    const jobId = answers[0]!.body.jobId;
    assert.equal(new Set(answers.map((a) => a.body.jobId)).size, 1);
    await waitFor(() => eventsFor('deposit.credited', jobId)[0], { what: 'deposit.credited' });
    // The processing message again, as a broker redelivery would bring it.
    const acked = await ackedDeposits();
    await intake.publishEvent<'deposit.received'>('deposit.received', { depositId: jobId, ...body, eventIndex: 0 });
    await waitFor(async () => (await ackedDeposits()) > acked, { what: 'redelivery consumed' });
    assert.equal((await credits(jobId)).length, 1);
    assert.equal((await credits(jobId))[0].wallet_id, wallet.walletId);
    assert.equal(eventsFor('deposit.credited', jobId).length, 1);
  });

  it('should not credit a transaction that does not exist on chain, failing it after its last attempt', async () => {
    const address = privateKeyToAccount(`0x${randomBytes(32).toString('hex')}`).address;
    await registerWallet('ETH', address);
    const res = await deliver(h, { body: { chain: 'ETH', txHash: `0x${randomBytes(32).toString('hex')}`, token: 'native', amount: '5', toAddress: address } });
    assert.equal(res.status, 200);
    const failed = await waitFor(() => eventsFor('deposit.failed', res.body.jobId)[0], { what: 'deposit.failed' });
    assert.match(failed.body.reason, /not found/);
    const row = await job(res.body.jobId);
    assert.equal(row.status, 'failed');
    // DEPOSIT_MAX_ATTEMPTS=3: two retries, then the verdict.
    assert.deepEqual(
      row.attempts.map((a: { status: string }) => a.status),
      ['retry', 'retry', 'failed'],
    );
    assert.deepEqual(await credits(res.body.jobId), []);
  });

  it('should fail, not credit, a transaction that pays the address another amount', async () => {
    const address = privateKeyToAccount(`0x${randomBytes(32).toString('hex')}`).address;
    await registerWallet('ETH', address);
    const hash = await sendEth(address, 1000n);
    const res = await deliver(h, { body: { chain: 'ETH', txHash: hash, token: 'native', amount: '1000000', toAddress: address } });
    const failed = await waitFor(() => eventsFor('deposit.failed', res.body.jobId)[0], { what: 'deposit.failed' });
    assert.match(failed.body.reason, /moves 1000, not 1000000/);
    assert.deepEqual(await credits(res.body.jobId), []);
  });

  /** A user's wallet pays `lamports` to `to` with a System transfer; returns the signature. */
  async function sendSol(to: string, lamports: number): Promise<string> {
    const conn = new Connection(solana.url, 'confirmed');
    const from = Keypair.generate();
    solana.airdrop(from.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const tx = new Transaction({ feePayer: from.publicKey, ...(await conn.getLatestBlockhash()) });
    tx.add(SystemProgram.transfer({ fromPubkey: from.publicKey, toPubkey: new PublicKey(to), lamports }));
    tx.sign(from);
    return conn.sendRawTransaction(tx.serialize());
  }

  it('should fail, not credit, a Solana transfer of another amount than the webhook says', async () => {
    const address = Keypair.generate().publicKey.toBase58();
    await registerWallet('SOL', address);
    const signature = await sendSol(address, 1_000_000);
    const res = await deliver(h, { body: { chain: 'SOL', txHash: signature, token: 'native', amount: '5000000', toAddress: address } });
    assert.equal(res.status, 200);
    const failed = await waitFor(() => eventsFor('deposit.failed', res.body.jobId)[0], { what: 'deposit.failed' });
    assert.match(failed.body.reason, /moves 1000000, not 5000000/);
    assert.equal((await job(res.body.jobId)).status, 'failed');
    assert.deepEqual(await credits(res.body.jobId), []);
    assert.equal(eventsFor('deposit.credited', res.body.jobId).length, 0);
  });

  it('should fail, not credit, a Solana transaction that does not pay the address', async () => {
    const address = Keypair.generate().publicKey.toBase58();
    await registerWallet('SOL', address);
    const signature = await sendSol(Keypair.generate().publicKey.toBase58(), 1_000_000);
    const res = await deliver(h, { body: { chain: 'SOL', txHash: signature, token: 'native', amount: '1000000', toAddress: address } });
    const failed = await waitFor(() => eventsFor('deposit.failed', res.body.jobId)[0], { what: 'deposit.failed' });
    assert.match(failed.body.reason, new RegExp(`pays \\w+, not ${address}`));
    assert.deepEqual(await credits(res.body.jobId), []);
  });

  it('should dead-letter a deposit to an address that is not ours at once, without crediting it', async () => {
    const stranger = Keypair.generate().publicKey.toBase58();
    const signature = solana.airdrop(stranger, 2_000_000n);
    const res = await deliver(h, { body: { chain: 'SOL', txHash: signature, token: 'native', amount: '2000000', toAddress: stranger } });
    assert.equal(res.status, 200);
    const dead = await waitFor(
      async () => {
        const msgs = await rabbitAdmin.drain(h.vhost.vhost, 'webhooks.deposits.dlq', 100);
        return msgs.find((m) => JSON.parse(m.payload).depositId === res.body.jobId);
      },
      { what: 'dead letter' },
    );
    assert.ok(dead);
    const row = await job(res.body.jobId);
    assert.equal(row.status, 'rejected');
    assert.deepEqual(
      row.attempts.map((a: { status: string; errorCode: string }) => [a.status, a.errorCode]),
      [['rejected', 'WALLET_NOT_FOUND']],
    );
    assert.deepEqual(await credits(res.body.jobId), []);
  });
});

describe('webhooks processing: chain RPC down', function () {
  this.timeout(60_000);
  let h: Harness;
  let wallets: Broker;

  before(async () => {
    // Nothing listens on port 1: every RPC call fails at once.
    // Delays of 100 ms, 5 times longer when the RPC itself fails: 500 ms, then 1 s.
    h = await startHarness({
      SOLANA_RPC_URL: 'http://127.0.0.1:1',
      EVM_RPC_URL: 'http://127.0.0.1:1',
      DEPOSIT_RETRY_INITIAL_MS: '100',
      DEPOSIT_RETRY_MAX_MS: '2000',
      DEPOSIT_RPC_RETRY_FACTOR: '5',
    });
    wallets = await h.as('wallet');
  });
  after(async () => {
    await h?.stop();
  });

  it('should retry with backoff while the RPC is down and dead-letter with the attempt log, leaving the deposit pending', async () => {
    const address = Keypair.generate().publicKey.toBase58();
    const wallet = { walletId: randomUUID(), userId: 'u-1', chain: 'SOL' as const, address, label: null, isActive: true, createdAt: new Date().toISOString() };
    await wallets.publishEvent('wallet.created', wallet);
    await waitFor(async () => (await h.db.query('SELECT 1 FROM known_addresses WHERE wallet_id = $1', [wallet.walletId])).rowCount === 1);
    const txHash = '5'.repeat(87);
    const res = await deliver(h, { body: { chain: 'SOL', txHash, token: 'native', amount: '1', toAddress: address } });
    assert.equal(res.status, 200);
    const dead = await waitFor(
      async () => {
        const msgs = await rabbitAdmin.drain(h.vhost.vhost, 'webhooks.deposits.dlq', 10);
        return msgs.find((m) => JSON.parse(m.payload).depositId === res.body.jobId);
      },
      { what: 'dead letter' },
    );
    assert.ok(dead);
    const row = (await h.db.query('SELECT status, attempts FROM deposits WHERE deposit_id = $1', [res.body.jobId])).rows[0];
    assert.equal(row.status, 'pending');
    assert.deepEqual(
      row.attempts.map((a: { status: string; errorCode: string }) => [a.status, a.errorCode]),
      [
        ['retry', 'UNAVAILABLE'],
        ['retry', 'UNAVAILABLE'],
        ['retry', 'UNAVAILABLE'],
      ],
    );
    // The RPC's own failure backs off DEPOSIT_RPC_RETRY_FACTOR times longer (±20 % jitter).
    const at = row.attempts.map((a: { at: string }) => Date.parse(a.at));
    assert.ok(at[1] - at[0] >= 400, `first delay ${at[1] - at[0]} ms`);
    assert.ok(at[2] - at[1] >= 800, `second delay ${at[2] - at[1]} ms`);
    assert.equal((await h.db.query('SELECT 1 FROM ledger WHERE deposit_id = $1', [res.body.jobId])).rowCount, 0);
  });
});
