import assert from 'node:assert/strict';
import { Connection, Keypair, PublicKey, SystemProgram, Transaction, TransactionMessage, VersionedTransaction } from '@solana/web3.js';
import {
  ACCOUNT_SIZE,
  MINT_SIZE,
  TOKEN_PROGRAM_ID,
  createAssociatedTokenAccountInstruction,
  createInitializeAccount3Instruction,
  createInitializeMint2Instruction,
  createMintToInstruction,
  getAssociatedTokenAddressSync,
} from '@solana/spl-token';
import { isFleetError } from '@wallet-fleet/contracts';
import { waitFor } from '@wallet-fleet/testing';
import { createSolanaAdapter, decodeSolanaTransaction, localEd25519Signer, parseSolanaTransaction, solanaAddress, type SolanaAdapter } from '../src/index.js';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';

const FEE = 5000n;
const SOL = 1_000_000_000n;

describe('Solana adapter over the litesvm runtime', () => {
  let runtime: SolanaRuntime;
  let solana: SolanaAdapter;
  const confirm = { timeoutMs: 5000, pollMs: 10 };

  before(async () => {
    runtime = await startSolanaRuntime({ port: 0, slotMs: 20 });
    solana = createSolanaAdapter({ rpcUrl: runtime.url });
  });
  after(async () => {
    await runtime?.stop();
  });

  it('should execute a SOL transfer signed through the signer interface, balances adding up minus the fee', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    const to = solanaAddress(localEd25519Signer().publicKey);
    runtime.airdrop(from, 2n * SOL);
    assert.equal(await solana.getBalance(from), 2n * SOL);

    const unsigned = await solana.buildTransfer({ from, to, lamports: SOL / 2n });
    const signed = await solana.signTransaction(unsigned, signer);
    const signature = await solana.sendAndConfirm(signed, confirm);

    assert.equal(await solana.getBalance(to), SOL / 2n);
    assert.equal(await solana.getBalance(from), 2n * SOL - SOL / 2n - FEE);
    const { value } = await new Connection(runtime.url).getSignatureStatuses([signature]);
    assert.equal(value[0]?.err, null);
  });

  it('should answer a resend of the same signed bytes with the same signature, moving funds once', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    const to = solanaAddress(localEd25519Signer().publicKey);
    runtime.airdrop(from, SOL);
    const signed = await solana.signTransaction(await solana.buildTransfer({ from, to, lamports: 3_000_000n }), signer);
    const first = await solana.sendAndConfirm(signed, confirm);
    assert.equal(await solana.sendAndConfirm(signed, confirm), first);
    assert.equal(await solana.getBalance(to), 3_000_000n);
    assert.equal(await solana.getBalance(from), SOL - 3_000_000n - FEE);
  });

  it('should still accept a transaction built on a blockhash a few slots old', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    const to = solanaAddress(localEd25519Signer().publicKey);
    runtime.airdrop(from, SOL);
    const unsigned = await solana.buildTransfer({ from, to, lamports: 1_000_000n });
    const conn = new Connection(runtime.url);
    const built = await conn.getSlot();
    const before = (await conn.getLatestBlockhash()).blockhash;
    // A new blockhash every slot: wait until the one built on is a few slots old.
    await waitFor(async () => (await conn.getSlot()) >= built + 3, { what: 'three more slots' });
    assert.notEqual((await conn.getLatestBlockhash()).blockhash, before);
    await solana.sendAndConfirm(await solana.signTransaction(unsigned, signer), confirm);
    assert.equal(await solana.getBalance(to), 1_000_000n);
  });

  it('should refuse a transaction on an unknown blockhash with SUBMISSION_FAILED, retryable (build it again)', async () => {
    const from = Keypair.generate();
    runtime.airdrop(from.publicKey.toBase58(), SOL);
    const tx = new Transaction({ feePayer: from.publicKey, blockhash: Keypair.generate().publicKey.toBase58(), lastValidBlockHeight: 0 });
    tx.add(SystemProgram.transfer({ fromPubkey: from.publicKey, toPubkey: Keypair.generate().publicKey, lamports: 1_000_000 }));
    tx.sign(from);
    await assert.rejects(solana.sendAndConfirm(tx.serialize(), confirm), (e) => isFleetError(e, 'SUBMISSION_FAILED') && e.retryable);
    assert.equal(await solana.getBalance(from.publicKey.toBase58()), SOL);
  });

  it('should map a transfer larger than the balance to INSUFFICIENT_FUNDS and charge nothing', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    runtime.airdrop(from, SOL);
    const unsigned = await solana.buildTransfer({ from, to: solanaAddress(localEd25519Signer().publicKey), lamports: 5n * SOL });
    await assert.rejects(solana.sendAndConfirm(await solana.signTransaction(unsigned, signer), confirm), (e) => isFleetError(e, 'INSUFFICIENT_FUNDS'));
    // Preflight refused it, so it never executed and no fee was taken.
    assert.equal(await solana.getBalance(from), SOL);
  });

  it('should map a transfer that fails on chain without preflight to INSUFFICIENT_FUNDS, the fee being charged', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    runtime.airdrop(from, SOL);
    const unsigned = await solana.buildTransfer({ from, to: solanaAddress(localEd25519Signer().publicKey), lamports: 5n * SOL });
    const signed = await solana.signTransaction(unsigned, signer);
    await assert.rejects(
      solana.sendAndConfirm(signed, { ...confirm, skipPreflight: true }),
      (e) => isFleetError(e, 'INSUFFICIENT_FUNDS') && typeof e.details?.signature === 'string',
    );
    assert.equal(await solana.getBalance(from), SOL - FEE);
  });

  it('should map a transfer from an account that was never funded to INSUFFICIENT_FUNDS', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    const unsigned = await solana.buildTransfer({ from, to: solanaAddress(localEd25519Signer().publicKey), lamports: 1000n });
    await assert.rejects(solana.sendAndConfirm(await solana.signTransaction(unsigned, signer), confirm), (e) => isFleetError(e, 'INSUFFICIENT_FUNDS'));
  });

  it('should refuse a malformed recipient with INVALID_RECIPIENT', async () => {
    const from = solanaAddress(localEd25519Signer().publicKey);
    await assert.rejects(solana.buildTransfer({ from, to: 'not-an-address', lamports: 1n }), (e) => isFleetError(e, 'INVALID_RECIPIENT'));
    await assert.rejects(solana.buildTransfer({ from, to: `0x${'11'.repeat(20)}`, lamports: 1n }), (e) => isFleetError(e, 'INVALID_RECIPIENT'));
    await assert.rejects(solana.buildTransfer({ from, to: from, lamports: 0n }), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });

  it('should map a new recipient left below the rent-exempt minimum to INVALID_RECIPIENT', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    runtime.airdrop(from, SOL);
    const unsigned = await solana.buildTransfer({ from, to: solanaAddress(localEd25519Signer().publicKey), lamports: 10n });
    await assert.rejects(solana.sendAndConfirm(await solana.signTransaction(unsigned, signer), confirm), (e) => isFleetError(e, 'INVALID_RECIPIENT'));
  });

  it('should refuse to sign a transaction the signer is not a required signer of', async () => {
    const payer = localEd25519Signer();
    const unsigned = await solana.buildTransfer({ from: solanaAddress(payer.publicKey), to: solanaAddress(localEd25519Signer().publicKey), lamports: 1000n });
    await assert.rejects(solana.signTransaction(unsigned, localEd25519Signer()), (e) => isFleetError(e, 'VALIDATION_FAILED'));
    await assert.rejects(solana.signTransaction(new Uint8Array([1, 2, 3]), payer), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });

  it('should add its signature to a transaction with another signer, keeping theirs', async () => {
    // A fee payer (the wallet) and a second required signer (e.g. a new account being created).
    const wallet = localEd25519Signer();
    const walletKey = new PublicKey(wallet.publicKey);
    const created = Keypair.generate();
    runtime.airdrop(walletKey.toBase58(), SOL);
    const conn = new Connection(runtime.url);
    const tx = new Transaction({ feePayer: walletKey, ...(await conn.getLatestBlockhash()) });
    tx.add(
      SystemProgram.createAccount({
        fromPubkey: walletKey,
        newAccountPubkey: created.publicKey,
        lamports: 2_000_000,
        space: 0,
        programId: SystemProgram.programId,
      }),
    );
    tx.partialSign(created);
    const bytes = tx.serialize({ requireAllSignatures: false });
    const signed = await solana.signTransaction(bytes, wallet);
    assert.equal(VersionedTransaction.deserialize(signed).signatures.filter((s) => s.some((b) => b !== 0)).length, 2);
    await solana.sendAndConfirm(signed, confirm);
    assert.equal(await solana.getBalance(created.publicKey.toBase58()), 2_000_000n);
  });

  it('should refuse a transaction with a forged signature with SIGNING_FAILED and leave balances alone', async () => {
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    runtime.airdrop(from, SOL);
    const unsigned = await solana.buildTransfer({ from, to: solanaAddress(localEd25519Signer().publicKey), lamports: 1_000_000n });
    const forged = VersionedTransaction.deserialize(unsigned);
    forged.signatures[0] = new Uint8Array(64).fill(9);
    await assert.rejects(solana.sendAndConfirm(forged.serialize(), confirm), (e) => isFleetError(e, 'SIGNING_FAILED'));
    assert.equal(await solana.getBalance(from), SOL);
  });

  async function createMint(payer: Keypair, decimals: number): Promise<Keypair> {
    const conn = new Connection(runtime.url);
    const mint = Keypair.generate();
    const tx = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      SystemProgram.createAccount({
        fromPubkey: payer.publicKey,
        newAccountPubkey: mint.publicKey,
        lamports: await conn.getMinimumBalanceForRentExemption(MINT_SIZE),
        space: MINT_SIZE,
        programId: TOKEN_PROGRAM_ID,
      }),
      createInitializeMint2Instruction(mint.publicKey, decimals, payer.publicKey, null),
    );
    tx.sign(payer, mint);
    await solana.sendAndConfirm(tx.serialize(), confirm);
    return mint;
  }

  it('should read an SPL token balance back', async () => {
    const owner = new PublicKey(localEd25519Signer().publicKey);
    const payer = Keypair.generate();
    runtime.airdrop(payer.publicKey.toBase58(), SOL);
    const conn = new Connection(runtime.url);
    const mint = await createMint(payer, 6);
    // A plain token account (the ATA program cannot run on this runtime, see the next test).
    const account = Keypair.generate();
    const tx = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      SystemProgram.createAccount({
        fromPubkey: payer.publicKey,
        newAccountPubkey: account.publicKey,
        lamports: await conn.getMinimumBalanceForRentExemption(ACCOUNT_SIZE),
        space: ACCOUNT_SIZE,
        programId: TOKEN_PROGRAM_ID,
      }),
      createInitializeAccount3Instruction(account.publicKey, mint.publicKey, owner),
      createMintToInstruction(mint.publicKey, account.publicKey, payer.publicKey, 4_200_000n),
    );
    tx.sign(payer, account);
    await solana.sendAndConfirm(tx.serialize(), confirm);

    const balances = await solana.getTokenBalances(owner.toBase58());
    assert.deepEqual(balances, [{ mint: mint.publicKey.toBase58(), account: account.publicKey.toBase58(), amount: 4_200_000n, decimals: 6 }]);
    assert.deepEqual(await solana.getTokenBalances(solanaAddress(localEd25519Signer().publicKey)), []);
  });

  it('should refuse an Associated Token Account instruction with a clear error instead of crashing', async () => {
    const payer = Keypair.generate();
    runtime.airdrop(payer.publicKey.toBase58(), SOL);
    const mint = await createMint(payer, 0);
    const owner = Keypair.generate().publicKey;
    const conn = new Connection(runtime.url);
    const tx = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      createAssociatedTokenAccountInstruction(payer.publicKey, getAssociatedTokenAddressSync(mint.publicKey, owner), owner, mint.publicKey),
    );
    tx.sign(payer);
    await assert.rejects(
      solana.sendAndConfirm(tx.serialize(), confirm),
      (e) => isFleetError(e, 'SUBMISSION_FAILED') && /Associated Token Account/.test(e.message),
    );
  });

  it('should answer UNAVAILABLE when the RPC endpoint is down', async () => {
    const down = createSolanaAdapter({ rpcUrl: 'http://127.0.0.1:1', requestTimeoutMs: 1000 });
    const addr = solanaAddress(localEd25519Signer().publicKey);
    await assert.rejects(down.getBalance(addr), (e) => isFleetError(e, 'UNAVAILABLE'));
    await assert.rejects(down.buildTransfer({ from: addr, to: addr, lamports: 1n }), (e) => isFleetError(e, 'UNAVAILABLE'));
    await assert.rejects(down.getTokenBalances(addr), (e) => isFleetError(e, 'UNAVAILABLE'));
    // Nothing reached a node: the same signed bytes may be sent again.
    const signer = localEd25519Signer();
    const from = solanaAddress(signer.publicKey);
    runtime.airdrop(from, SOL);
    const signed = await solana.signTransaction(await solana.buildTransfer({ from, to: addr, lamports: 1_000_000n }), signer);
    await assert.rejects(down.sendAndConfirm(signed, confirm), (e) => isFleetError(e, 'UNAVAILABLE') && e.retryable);
    await solana.sendAndConfirm(signed, confirm);
    assert.equal(await solana.getBalance(addr), 1_000_000n);
  });

  it('should return the very bytes web3.js serializes for the signed transaction, legacy and v0, with other signers and with trailing bytes', async () => {
    const { blockhash } = await new Connection(runtime.url).getLatestBlockhash();
    const signer = localEd25519Signer();
    const key = new PublicKey(signer.publicKey);
    const other = Keypair.generate();
    const transfer = (from: PublicKey) => SystemProgram.transfer({ fromPubkey: from, toPubkey: Keypair.generate().publicKey, lamports: 5 });
    const legacy = new Transaction({ feePayer: key, blockhash, lastValidBlockHeight: 0 }).add(transfer(key));
    const twoSigners = new Transaction({ feePayer: key, blockhash, lastValidBlockHeight: 0 }).add(transfer(key), transfer(other.publicKey));
    twoSigners.partialSign(other);
    const v0 = new VersionedTransaction(
      new TransactionMessage({
        payerKey: other.publicKey,
        recentBlockhash: blockhash,
        instructions: [transfer(other.publicKey), transfer(key)],
      }).compileToV0Message(),
    );
    v0.sign([other]);
    const inputs = [legacy.serialize({ requireAllSignatures: false }), twoSigners.serialize({ requireAllSignatures: false }), Buffer.from(v0.serialize())];
    // Bytes after the message: read past by web3.js, and dropped when it serializes again.
    inputs.push(Buffer.concat([inputs[0]!, Buffer.from([7])]));
    for (const [i, bytes] of inputs.entries()) {
      const signed = await solana.signTransaction(bytes, signer);
      const expected = VersionedTransaction.deserialize(bytes);
      expected.addSignature(key, VersionedTransaction.deserialize(signed).signatures[expected.message.staticAccountKeys.findIndex((k) => k.equals(key))]!);
      assert.deepEqual(Buffer.from(signed), Buffer.from(expected.serialize()), `input ${i}`);
      // Read once and shared with the decoding: the same bytes, and the parsed transaction left as read.
      const parsed = parseSolanaTransaction(bytes);
      assert.deepEqual(decodeSolanaTransaction(parsed, { wallet: key.toBase58() }), decodeSolanaTransaction(bytes, { wallet: key.toBase58() }));
      assert.deepEqual(Buffer.from(await solana.signTransaction(parsed, signer)), Buffer.from(signed), `input ${i}, parsed`);
      assert.deepEqual(Buffer.from(parsed.transaction.serialize()), Buffer.from(VersionedTransaction.deserialize(bytes).serialize()));
    }
  });

  it('should sign 100 random transactions so that every signature verifies for its signer', async () => {
    const conn = new Connection(runtime.url);
    const { blockhash } = await conn.getLatestBlockhash();
    for (let i = 0; i < 100; i++) {
      const signer = localEd25519Signer();
      const key = new PublicKey(signer.publicKey);
      const tx = new Transaction({ feePayer: key, blockhash, lastValidBlockHeight: 0 });
      for (let j = 0; j <= i % 4; j++) {
        tx.add(SystemProgram.transfer({ fromPubkey: key, toPubkey: Keypair.generate().publicKey, lamports: 1 + Math.floor(Math.random() * 1e9) }));
      }
      const signed = await solana.signTransaction(tx.serialize({ requireAllSignatures: false }), signer);
      const back = Transaction.from(signed);
      assert.equal(back.verifySignatures(), true, `tx ${i}`);
      assert.equal(back.instructions.length, tx.instructions.length);
    }
  });
});
