import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Connection, Keypair, LAMPORTS_PER_SOL, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import bs58 from 'bs58';
import { isFleetError } from '@wallet-fleet/contracts';
import { waitFor } from '@wallet-fleet/testing';
import { createSolanaAdapter, startSolanaRuntime, type SolanaRuntime } from '../src/index.js';

async function rpc(url: string, method: string, params: unknown[] = []): Promise<any> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) });
  return res.json();
}

describe('Solana runtime (JSON-RPC over litesvm)', () => {
  let runtime: SolanaRuntime;
  let conn: Connection;

  before(async () => {
    runtime = await startSolanaRuntime({ port: 0, slotMs: 20 });
    conn = new Connection(runtime.url, 'confirmed');
  });
  after(async () => {
    await runtime?.stop();
  });

  function transfer(from: Keypair, to: PublicKey, lamports: number, blockhash: string): Transaction {
    const tx = new Transaction({ feePayer: from.publicKey, blockhash, lastValidBlockHeight: 0 });
    tx.add(SystemProgram.transfer({ fromPubkey: from.publicKey, toPubkey: to, lamports }));
    tx.sign(from);
    return tx;
  }

  it('should credit an airdrop requested over RPC and report it confirmed', async () => {
    const who = Keypair.generate().publicKey;
    const sig = await conn.requestAirdrop(who, LAMPORTS_PER_SOL);
    const { value } = await conn.getSignatureStatuses([sig]);
    assert.equal(value[0]?.confirmationStatus, 'finalized');
    assert.equal(await conn.getBalance(who), LAMPORTS_PER_SOL);
  });

  it('should advance slots and blockhashes over time', async () => {
    const a = await conn.getLatestBlockhash();
    const slot = await conn.getSlot();
    await waitFor(async () => (await conn.getSlot()) > slot + 2, { timeoutMs: 5000 });
    const b = await conn.getLatestBlockhash();
    assert.notEqual(a.blockhash, b.blockhash);
    assert.ok(b.lastValidBlockHeight > a.lastValidBlockHeight);
  });

  it('should accept base58 and base64 encoded transactions', async () => {
    const from = Keypair.generate();
    const to = Keypair.generate().publicKey;
    runtime.airdrop(from.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const { blockhash } = await conn.getLatestBlockhash();
    const one = transfer(from, to, 1_000_000, blockhash).serialize();
    const r1 = await rpc(runtime.url, 'sendTransaction', [bs58.encode(one)]);
    assert.equal(typeof r1.result, 'string');
    const two = transfer(from, to, 2_000_000, blockhash).serialize();
    const r2 = await rpc(runtime.url, 'sendTransaction', [two.toString('base64'), { encoding: 'base64' }]);
    assert.equal(typeof r2.result, 'string');
    assert.equal(await conn.getBalance(to), 3_000_000);
  });

  it('should refuse a replayed transaction as already processed, moving funds once', async () => {
    const from = Keypair.generate();
    const to = Keypair.generate().publicKey;
    runtime.airdrop(from.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const bytes = transfer(from, to, 1_000_000, (await conn.getLatestBlockhash()).blockhash).serialize();
    await conn.sendRawTransaction(bytes);
    await assert.rejects(conn.sendRawTransaction(bytes), /already been processed/);
    assert.equal(await conn.getBalance(to), 1_000_000);
  });

  it('should refuse a replay even after many other transactions', async () => {
    const from = Keypair.generate();
    const to = Keypair.generate().publicKey;
    runtime.airdrop(from.publicKey.toBase58(), BigInt(100 * LAMPORTS_PER_SOL));
    const { blockhash } = await conn.getLatestBlockhash();
    const first = transfer(from, to, 1_000_000, blockhash).serialize();
    await conn.sendRawTransaction(first);
    // Straight into the VM: litesvm's own history of processed signatures is short (about 30 here).
    const bh = runtime.svm.latestBlockhash();
    for (let i = 1; i <= 200; i++) runtime.svm.sendTransaction(transfer(from, Keypair.generate().publicKey, 1_000_000 + i, bh));
    await assert.rejects(conn.sendRawTransaction(first), /already been processed/);
    await assert.rejects(conn.sendRawTransaction(first, { skipPreflight: true }), /already been processed/);
    assert.equal(await conn.getBalance(to), 1_000_000);
  });

  it('should execute a failing transaction sent without preflight, charge its fee and report the error in its status', async () => {
    const from = Keypair.generate();
    runtime.airdrop(from.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const tx = transfer(from, Keypair.generate().publicKey, 2 * LAMPORTS_PER_SOL, (await conn.getLatestBlockhash()).blockhash);
    const sig = await conn.sendRawTransaction(tx.serialize(), { skipPreflight: true });
    const { value } = await conn.getSignatureStatuses([sig]);
    assert.deepEqual(value[0]?.err, { InstructionError: [0, { Custom: 1 }] });
    assert.equal(await conn.getBalance(from.publicKey), LAMPORTS_PER_SOL - 5000);
  });

  it('should refuse a transaction on an unknown blockhash; the adapter says SUBMISSION_FAILED, retryable', async () => {
    const from = Keypair.generate();
    runtime.airdrop(from.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const tx = transfer(from, Keypair.generate().publicKey, 1_000_000, Keypair.generate().publicKey.toBase58());
    const adapter = createSolanaAdapter({ rpcUrl: runtime.url });
    await assert.rejects(adapter.sendAndConfirm(tx.serialize(), { timeoutMs: 2000, pollMs: 10 }), (e) => isFleetError(e, 'SUBMISSION_FAILED') && e.retryable);
    assert.equal(await conn.getBalance(from.publicKey), LAMPORTS_PER_SOL);
  });

  it('should quote the fee and rent exemption like a cluster', async () => {
    const from = Keypair.generate();
    const tx = transfer(from, Keypair.generate().publicKey, 1, (await conn.getLatestBlockhash()).blockhash);
    assert.equal(await conn.getFeeForMessage(tx.compileMessage()).then((r) => r.value), 5000);
    assert.equal(await conn.getMinimumBalanceForRentExemption(0), 890880);
    const sim = await conn.simulateTransaction(tx);
    assert.equal(sim.value.err, 'AccountNotFound');
  });

  it('should answer unknown methods with a JSON-RPC method-not-found error', async () => {
    const r = await rpc(runtime.url, 'getBlockProduction');
    assert.equal(r.error.code, -32601);
  });

  it('should fail to start on a port that is taken', async () => {
    await assert.rejects(startSolanaRuntime({ port: runtime.port }), /EADDRINUSE/);
  });

  it('should run as a process on SOLANA_RUNTIME_PORT and stop on SIGTERM', async () => {
    const main = fileURLToPath(new URL('../src/solana-runtime-main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main], { env: { ...process.env, SOLANA_RUNTIME_PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((r) => child.once('exit', r));
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const url = await waitFor(() => /"url":"([^"]+)"/.exec(out)?.[1], { timeoutMs: 20000, what: 'the listening line' });
      const version = await rpc(url, 'getVersion');
      assert.equal(typeof version.result['solana-core'], 'string');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    assert.equal(child.exitCode, 0);
  });
});
