import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  AddressLookupTableProgram,
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  PublicKey,
  SystemProgram,
  Transaction,
  TransactionMessage,
  VersionedTransaction,
  type AddressLookupTableAccount,
} from '@solana/web3.js';
import bs58 from 'bs58';
import {
  ACCOUNT_SIZE,
  MINT_SIZE,
  TOKEN_PROGRAM_ID,
  createInitializeAccount3Instruction,
  createInitializeMint2Instruction,
  createMintToInstruction,
  createTransferCheckedInstruction,
} from '@solana/spl-token';
import { waitFor } from '@wallet-fleet/testing';
import { startSolanaRuntime, type SolanaRuntime } from '../src/index.js';

async function rpc(url: string, method: string, params: unknown[] = []): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
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

  it('should refuse a transaction on an unknown blockhash as a validator does (Blockhash not found) and leave the payer untouched', async () => {
    const from = Keypair.generate();
    runtime.airdrop(from.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const tx = transfer(from, Keypair.generate().publicKey, 1_000_000, Keypair.generate().publicKey.toBase58());
    const r = await rpc(runtime.url, 'sendTransaction', [tx.serialize().toString('base64'), { encoding: 'base64' }]);
    assert.equal(r.error.code, -32002);
    assert.match(r.error.message, /Blockhash not found/);
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

  describe('getTransaction', () => {
    /** A funded payer and a fresh recipient. */
    function funded(lamports = LAMPORTS_PER_SOL) {
      const from = Keypair.generate();
      runtime.airdrop(from.publicKey.toBase58(), BigInt(lamports));
      return { from, to: Keypair.generate().publicKey };
    }
    function v0Transfer(from: Keypair, to: PublicKey, lamports: number, blockhash: string, tables: AddressLookupTableAccount[] = []) {
      const message = new TransactionMessage({
        payerKey: from.publicKey,
        recentBlockhash: blockhash,
        instructions: [SystemProgram.transfer({ fromPubkey: from.publicKey, toPubkey: to, lamports })],
      }).compileToV0Message(tables);
      const tx = new VersionedTransaction(message);
      tx.sign([from]);
      return tx;
    }

    it('should show a SOL transfer: the recipient gains the amount, the payer loses amount and fee', async () => {
      const { from, to } = funded();
      const sig = await conn.sendRawTransaction(transfer(from, to, 1_234_567, (await conn.getLatestBlockhash()).blockhash).serialize());
      const tx = await conn.getTransaction(sig, { maxSupportedTransactionVersion: 0, commitment: 'confirmed' });
      assert.ok(tx?.meta);
      assert.equal(tx.version, 'legacy');
      assert.equal(tx.meta.err, null);
      assert.equal(tx.meta.fee, 5000);
      const keys = tx.transaction.message.getAccountKeys().staticAccountKeys.map((k) => k.toBase58());
      const payer = keys.indexOf(from.publicKey.toBase58());
      const recipient = keys.indexOf(to.toBase58());
      assert.equal(tx.meta.preBalances[payer], LAMPORTS_PER_SOL);
      assert.equal(tx.meta.postBalances[payer], LAMPORTS_PER_SOL - 1_234_567 - 5000);
      assert.equal(tx.meta.preBalances[recipient], 0);
      assert.equal(tx.meta.postBalances[recipient], 1_234_567);
      assert.equal(tx.meta.postBalances[recipient], await conn.getBalance(to));
      assert.equal(tx.transaction.signatures[0], sig);
      assert.equal(tx.slot, (await conn.getSignatureStatuses([sig])).value[0]?.slot);
      assert.ok(Math.abs(tx.blockTime! - Date.now() / 1000) < 60);
      assert.ok(tx.meta.logMessages?.some((l) => l.includes('11111111111111111111111111111111 success')));
    });

    it('should parse the transfer in jsonParsed', async () => {
      const { from, to } = funded();
      const sig = await conn.sendRawTransaction(transfer(from, to, 1_777_777, (await conn.getLatestBlockhash()).blockhash).serialize());
      const tx = await conn.getParsedTransaction(sig, { maxSupportedTransactionVersion: 0 });
      assert.deepEqual(tx?.transaction.message.instructions[0], {
        program: 'system',
        programId: SystemProgram.programId,
        parsed: { type: 'transfer', info: { source: from.publicKey.toBase58(), destination: to.toBase58(), lamports: 1_777_777 } },
        stackHeight: null,
      });
      const payer = tx!.transaction.message.accountKeys[0]!;
      assert.equal(payer.pubkey.toBase58(), from.publicKey.toBase58());
      assert.equal(payer.signer, true);
      assert.equal(payer.writable, true);
    });

    it('should report a failed transaction with its error, charging only the fee', async () => {
      const { from, to } = funded();
      const tx = transfer(from, to, 2 * LAMPORTS_PER_SOL, (await conn.getLatestBlockhash()).blockhash);
      const sig = await conn.sendRawTransaction(tx.serialize(), { skipPreflight: true });
      const got = await conn.getTransaction(sig, { maxSupportedTransactionVersion: 0 });
      assert.deepEqual(got?.meta?.err, { InstructionError: [0, { Custom: 1 }] });
      assert.equal(got?.meta?.fee, 5000);
      assert.deepEqual(got?.meta?.preBalances.slice(0, 2), [LAMPORTS_PER_SOL, 0]);
      assert.deepEqual(got?.meta?.postBalances.slice(0, 2), [LAMPORTS_PER_SOL - 5000, 0]);
      assert.ok(got?.meta?.logMessages?.some((l) => /insufficient lamports/.test(l)));
    });

    it('should answer null for a signature that never landed', async () => {
      assert.equal(await conn.getTransaction(bs58.encode(Keypair.generate().secretKey), { maxSupportedTransactionVersion: 0 }), null);
    });

    it('should show an airdrop as a transfer to the address', async () => {
      const who = Keypair.generate().publicKey;
      const sig = runtime.airdrop(who.toBase58(), 3_000_000n);
      const tx = await conn.getParsedTransaction(sig, { maxSupportedTransactionVersion: 0 });
      const i = tx!.transaction.message.accountKeys.findIndex((k) => k.pubkey.equals(who));
      assert.equal(tx!.meta!.postBalances[i]! - tx!.meta!.preBalances[i]!, 3_000_000);
    });

    it('should credit the same airdrop twice in one slot as two transactions', async () => {
      const who = Keypair.generate().publicKey.toBase58();
      const a = runtime.airdrop(who, 1_000_000n);
      const b = runtime.airdrop(who, 1_000_000n);
      assert.notEqual(a, b);
      assert.equal(await conn.getBalance(new PublicKey(who)), 2_000_000);
    });

    it('should give the wire bytes in base64', async () => {
      const { from, to } = funded();
      const bytes = transfer(from, to, 1_000_000, (await conn.getLatestBlockhash()).blockhash).serialize();
      const sig = await conn.sendRawTransaction(bytes);
      const r = await rpc(runtime.url, 'getTransaction', [sig, { encoding: 'base64' }]);
      assert.deepEqual(r.result.transaction, [bytes.toString('base64'), 'base64']);
      assert.equal(r.result.meta.fee, 5000);
      assert.equal('version' in r.result, false); // a validator omits it unless the client names a version
    });

    it('should refuse a v0 transaction to a client that names no maxSupportedTransactionVersion, as a validator does', async () => {
      const { from, to } = funded();
      const sig = await conn.sendTransaction(v0Transfer(from, to, 1_000_000, (await conn.getLatestBlockhash()).blockhash));
      const r = await rpc(runtime.url, 'getTransaction', [sig, { encoding: 'json' }]);
      assert.equal(r.error.code, -32015);
      assert.match(r.error.message, /Transaction version \(0\) is not supported by the requesting client.*"maxSupportedTransactionVersion": 0/);
      const tx = await conn.getTransaction(sig, { maxSupportedTransactionVersion: 0 });
      assert.equal(tx?.version, 0);
      assert.equal(tx?.meta?.postBalances[1], 1_000_000);
    });

    it('should list accounts loaded from an address lookup table after the static keys, with their balances', async () => {
      const { from, to } = funded();
      // An active table holding `to`, written straight into the VM (the lookup table program's
      // create + extend would work too, but needs a slot to pass between them).
      const table = Keypair.generate().publicKey;
      const data = Buffer.alloc(56 + 32);
      data.writeUInt32LE(1, 0); // ProgramState::LookupTable
      data.writeBigUInt64LE(2n ** 64n - 1n, 4); // deactivation slot: never
      data.writeBigUInt64LE(0n, 12); // last extended slot
      data[21] = 1; // authority: Some
      from.publicKey.toBuffer().copy(data, 22);
      to.toBuffer().copy(data, 56);
      runtime.svm.setAccount(table, { lamports: LAMPORTS_PER_SOL, data, owner: AddressLookupTableProgram.programId, executable: false });
      await waitFor(async () => (await conn.getSlot()) > 1, { timeoutMs: 5000 });
      const lookup = (await conn.getAddressLookupTable(table)).value!;
      const tx = v0Transfer(from, to, 1_500_000, (await conn.getLatestBlockhash()).blockhash, [lookup]);
      assert.equal(tx.message.staticAccountKeys.length, 2); // payer, system program: `to` comes from the table
      const sig = await conn.sendTransaction(tx);
      const got = await conn.getTransaction(sig, { maxSupportedTransactionVersion: 0 });
      assert.deepEqual(got?.meta?.loadedAddresses, { writable: [to], readonly: [] });
      assert.equal(got?.meta?.preBalances[2], 0);
      assert.equal(got?.meta?.postBalances[2], 1_500_000);
      assert.equal(got?.meta?.fee, 5000);
    });
  });

  it('should give the token balances of a transaction before and after, with mint, owner and decimals', async () => {
    const payer = Keypair.generate();
    runtime.airdrop(payer.publicKey.toBase58(), BigInt(LAMPORTS_PER_SOL));
    const [mint, a, b] = [Keypair.generate(), Keypair.generate(), Keypair.generate()];
    const [ownerA, ownerB] = [Keypair.generate(), Keypair.generate().publicKey];
    const rent = (space: number) => conn.getMinimumBalanceForRentExemption(space);
    const create = async (account: Keypair, space: number) =>
      SystemProgram.createAccount({
        fromPubkey: payer.publicKey,
        newAccountPubkey: account.publicKey,
        lamports: await rent(space),
        space,
        programId: TOKEN_PROGRAM_ID,
      });
    const setup = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      await create(mint, MINT_SIZE),
      createInitializeMint2Instruction(mint.publicKey, 6, payer.publicKey, null),
      await create(a, ACCOUNT_SIZE),
      createInitializeAccount3Instruction(a.publicKey, mint.publicKey, ownerA.publicKey),
      await create(b, ACCOUNT_SIZE),
      createInitializeAccount3Instruction(b.publicKey, mint.publicKey, ownerB),
      createMintToInstruction(mint.publicKey, a.publicKey, payer.publicKey, 5_000_000n),
    );
    setup.sign(payer, mint, a, b);
    await conn.sendRawTransaction(setup.serialize());
    const pay = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      createTransferCheckedInstruction(a.publicKey, mint.publicKey, b.publicKey, ownerA.publicKey, 1_250_000n, 6),
    );
    pay.sign(payer, ownerA);
    const sig = await conn.sendRawTransaction(pay.serialize());
    const tx = await conn.getTransaction(sig, { maxSupportedTransactionVersion: 0 });
    const keys = tx!.transaction.message.staticAccountKeys.map((k) => k.toBase58());
    const balance = (account: Keypair, owner: PublicKey, amount: string, uiAmount: number) => ({
      accountIndex: keys.indexOf(account.publicKey.toBase58()),
      mint: mint.publicKey.toBase58(),
      owner: owner.toBase58(),
      programId: TOKEN_PROGRAM_ID.toBase58(),
      uiTokenAmount: { amount, decimals: 6, uiAmount: amount === '0' ? null : uiAmount, uiAmountString: String(uiAmount) },
    });
    const byIndex = (x: { accountIndex: number }, y: { accountIndex: number }) => x.accountIndex - y.accountIndex;
    assert.deepEqual(tx?.meta?.preTokenBalances?.sort(byIndex), [balance(a, ownerA.publicKey, '5000000', 5), balance(b, ownerB, '0', 0)].sort(byIndex));
    assert.deepEqual(
      tx?.meta?.postTokenBalances?.sort(byIndex),
      [balance(a, ownerA.publicKey, '3750000', 3.75), balance(b, ownerB, '1250000', 1.25)].sort(byIndex),
    );
  });

  it('should report a transaction confirmed, then finalized once finalizeAfterSlots have passed', async () => {
    const slow = await startSolanaRuntime({ port: 0, slotMs: 20, finalizeAfterSlots: 10 });
    try {
      const slowConn = new Connection(slow.url, 'confirmed');
      const sig = slow.airdrop(Keypair.generate().publicKey.toBase58(), 1_000_000n);
      const first = (await slowConn.getSignatureStatuses([sig])).value[0];
      assert.equal(first?.confirmationStatus, 'confirmed');
      assert.equal(typeof first?.confirmations, 'number');
      assert.equal(await slowConn.getTransaction(sig, { commitment: 'finalized', maxSupportedTransactionVersion: 0 }), null, 'not there yet at finalized');
      await waitFor(async () => (await slowConn.getSignatureStatuses([sig])).value[0]?.confirmationStatus === 'finalized', {
        timeoutMs: 5000,
        what: 'finalized',
      });
      assert.equal((await slowConn.getSignatureStatuses([sig])).value[0]?.confirmations, null);
      assert.notEqual(await slowConn.getTransaction(sig, { commitment: 'finalized', maxSupportedTransactionVersion: 0 }), null);
    } finally {
      await slow.stop();
    }
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
    const child = spawn(process.execPath, ['--import', 'tsx', main], {
      env: { ...process.env, SOLANA_RUNTIME_PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
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
