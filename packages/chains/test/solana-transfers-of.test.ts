// Every transfer of a Solana transaction at its on-chain identity, read back from the local runtime
// (real litesvm execution): what deposit crediting keys on (the instruction's index), with SPL
// payees resolved to the owner of the token account and the mint's decimals from the chain.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  ComputeBudgetProgram,
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  type PublicKey,
  SystemProgram,
  Transaction,
  TransactionMessage,
  VersionedTransaction,
  type TransactionInstruction,
  type VersionedTransactionResponse,
} from '@solana/web3.js';
import bs58 from 'bs58';
import {
  ACCOUNT_SIZE,
  MINT_SIZE,
  TOKEN_PROGRAM_ID,
  TOKEN_2022_PROGRAM_ID,
  createInitializeAccount3Instruction,
  createInitializeMint2Instruction,
  createMintToInstruction,
  ExtensionType,
  createInitializeTransferFeeConfigInstruction,
  createTransferCheckedInstruction,
  createTransferCheckedWithFeeInstruction,
  createTransferInstruction,
  getAccountLen,
  getMintLen,
} from '@solana/spl-token';
import { isFleetError } from '@wallet-fleet/contracts';
import { waitFor } from '@wallet-fleet/testing';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { createSolanaAdapter, judgeClaim, type SolanaAdapter, type TransactionReport } from '../src/index.js';
import { transfersInTransaction } from '../src/solana/transfers.js';

const landed = (r: TransactionReport) => {
  assert.equal(
    r.status,
    'landed',
    JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
  );
  return r as Extract<TransactionReport, { status: 'landed' }>;
};

describe('Solana transfers of a transaction at their on-chain identity', () => {
  let runtime: SolanaRuntime;
  let solana: SolanaAdapter;
  let conn: Connection;
  const payer = Keypair.generate();

  before(async () => {
    runtime = await startSolanaRuntime({ port: 0, slotMs: 20 });
    solana = createSolanaAdapter({ rpcUrl: runtime.url });
    conn = new Connection(runtime.url, 'confirmed');
    runtime.airdrop(payer.publicKey.toBase58(), 100n * BigInt(LAMPORTS_PER_SOL));
  });
  after(async () => {
    await runtime?.stop();
  });

  async function send(instructions: TransactionInstruction[], signers: Keypair[] = [], skipPreflight = false): Promise<string> {
    const tx = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(...instructions);
    tx.sign(payer, ...signers);
    return conn.sendRawTransaction(tx.serialize(), { skipPreflight });
  }
  async function newAccount(account: Keypair, space: number, programId: PublicKey): Promise<TransactionInstruction> {
    const lamports = await conn.getMinimumBalanceForRentExemption(space);
    return SystemProgram.createAccount({ fromPubkey: payer.publicKey, newAccountPubkey: account.publicKey, lamports, space, programId });
  }
  /** A USDC-like mint (6 decimals) and a funded token account of `owner` (plain accounts: the runtime cannot run the ATA program). */
  async function usdcLike(program = TOKEN_PROGRAM_ID) {
    const mint = Keypair.generate();
    await send([await newAccount(mint, MINT_SIZE, program), createInitializeMint2Instruction(mint.publicKey, 6, payer.publicKey, null, program)], [mint]);
    const holder = Keypair.generate();
    const source = await tokenAccount(mint.publicKey, holder.publicKey, program);
    await send([createMintToInstruction(mint.publicKey, source, payer.publicKey, 1_000_000_000n, [], program)]);
    return { mint: mint.publicKey, holder, source };
  }
  async function tokenAccount(mint: PublicKey, owner: PublicKey, program = TOKEN_PROGRAM_ID): Promise<PublicKey> {
    const account = Keypair.generate();
    await send([await newAccount(account, ACCOUNT_SIZE, program), createInitializeAccount3Instruction(account.publicKey, mint, owner, program)], [account]);
    return account.publicKey;
  }

  it('should list a USDC-like transferChecked at its instruction index, paid to the owner of the token account, with mint and decimals from the chain', async () => {
    const { mint, holder, source } = await usdcLike();
    const wallet = Keypair.generate().publicKey;
    const destination = await tokenAccount(mint, wallet);
    const signature = await send(
      [
        ComputeBudgetProgram.setComputeUnitLimit({ units: 300_000 }),
        createTransferCheckedInstruction(source, mint, destination, holder.publicKey, 1_250_000n, 6),
      ],
      [holder],
    );
    const report = landed(await solana.transfersOf(signature));
    assert.deepEqual(report.transfers, [
      {
        eventIndex: 1,
        asset: { kind: 'spl', mint: mint.toBase58(), decimals: 6, program: 'token' },
        from: holder.publicKey.toBase58(),
        to: wallet.toBase58(),
        tokenAccount: destination.toBase58(),
        amount: 1_250_000n,
      },
    ]);
  });

  it('should list unchecked SPL transfers to several wallets, each at its own index with its own amount', async () => {
    const { mint, holder, source } = await usdcLike();
    const [w1, w2] = [Keypair.generate().publicKey, Keypair.generate().publicKey];
    const [d1, d2] = [await tokenAccount(mint, w1), await tokenAccount(mint, w2)];
    const signature = await send(
      [
        createTransferInstruction(source, d1, holder.publicKey, 10n),
        createTransferInstruction(source, d2, holder.publicKey, 20n),
        createTransferInstruction(source, d1, holder.publicKey, 0n),
      ],
      [holder],
    );
    const transfers = landed(await solana.transfersOf(signature)).transfers;
    assert.deepEqual(
      transfers.map((t) => [t.eventIndex, t.to, t.amount]),
      [
        [0, w1.toBase58(), 10n],
        [1, w2.toBase58(), 20n],
      ],
      'the zero-amount transfer is left out',
    );
  });

  it('should tell a Token-2022 transfer by its program', async () => {
    const { mint, holder, source } = await usdcLike(TOKEN_2022_PROGRAM_ID);
    const wallet = Keypair.generate().publicKey;
    const destination = await tokenAccount(mint, wallet, TOKEN_2022_PROGRAM_ID);
    const signature = await send([createTransferCheckedInstruction(source, mint, destination, holder.publicKey, 5n, 6, [], TOKEN_2022_PROGRAM_ID)], [holder]);
    assert.deepEqual(landed(await solana.transfersOf(signature)).transfers[0]?.asset, {
      kind: 'spl',
      mint: mint.toBase58(),
      decimals: 6,
      program: 'token-2022',
    });
  });

  it('should list SOL System transfers at their instruction index, and SOL and a token in one transaction side by side', async () => {
    const { mint, holder, source } = await usdcLike();
    const wallet = Keypair.generate().publicKey;
    const destination = await tokenAccount(mint, wallet);
    const other = Keypair.generate().publicKey;
    const signature = await send(
      [
        SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: other, lamports: 2_000_000 }),
        createTransferCheckedInstruction(source, mint, destination, holder.publicKey, 7_000_000n, 6),
        SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: wallet, lamports: 3_000_000 }),
      ],
      [holder],
    );
    const { transfers } = landed(await solana.transfersOf(signature));
    assert.deepEqual(
      transfers.map((t) => ({ eventIndex: t.eventIndex, kind: t.asset.kind, to: t.to, amount: t.amount })),
      [
        { eventIndex: 0, kind: 'native', to: other.toBase58(), amount: 2_000_000n },
        { eventIndex: 1, kind: 'spl', to: wallet.toBase58(), amount: 7_000_000n },
        { eventIndex: 2, kind: 'native', to: wallet.toBase58(), amount: 3_000_000n },
      ],
    );
    assert.equal(transfers[0]!.from, payer.publicKey.toBase58());
  });

  it('should number inner instructions after their outer one: (outer + 1) * 100 + inner', () => {
    // The runtime cannot run cross-program invocations (litesvm corrupts memory on them), so this
    // is a validator-shaped answer: outer 0 is a program that paid SOL and USDC-like tokens through
    // two inner instructions; outer 1 a compute-budget instruction.
    const [router, mint, source, destination, owner, wallet, other] = Array.from({ length: 7 }, () => Keypair.generate().publicKey);
    const message = new TransactionMessage({
      payerKey: payer.publicKey,
      recentBlockhash: bs58.encode(randomBytes(32)),
      instructions: [
        {
          programId: router!,
          data: Buffer.alloc(0),
          keys: [source!, mint!, destination!, owner!, other!, TOKEN_PROGRAM_ID, SystemProgram.programId].map((pubkey) => ({
            pubkey,
            isSigner: false,
            isWritable: true,
          })),
        },
        ComputeBudgetProgram.setComputeUnitLimit({ units: 1 }),
      ],
    }).compileToLegacyMessage();
    const at = (k: PublicKey) => message.accountKeys.findIndex((x) => x.equals(k));
    const compiled = (ix: TransactionInstruction) => ({
      programIdIndex: at(ix.programId),
      accounts: ix.keys.map((k) => at(k.pubkey)),
      data: bs58.encode(ix.data),
      stackHeight: 2,
    });
    const balance = (account: PublicKey, who: PublicKey, amount: string) => ({
      accountIndex: at(account),
      mint: mint!.toBase58(),
      owner: who.toBase58(),
      programId: TOKEN_PROGRAM_ID.toBase58(),
      uiTokenAmount: { amount, decimals: 6, uiAmount: null, uiAmountString: '0' },
    });
    const response = {
      slot: 1,
      blockTime: null,
      transaction: { message: new VersionedTransaction(message).message, signatures: [] },
      meta: {
        err: null,
        fee: 5000,
        preBalances: [],
        postBalances: [],
        innerInstructions: [
          {
            index: 0,
            instructions: [
              compiled(SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: other!, lamports: 9 })),
              compiled(createTransferCheckedInstruction(source!, mint!, destination!, owner!, 4_000_000n, 6)),
            ],
          },
        ],
        preTokenBalances: [balance(source!, owner!, '4000000'), balance(destination!, wallet!, '0')],
        postTokenBalances: [balance(source!, owner!, '0'), balance(destination!, wallet!, '4000000')],
        loadedAddresses: { writable: [], readonly: [] },
      },
    } as unknown as VersionedTransactionResponse;
    assert.deepEqual(transfersInTransaction(response), [
      { eventIndex: 100, asset: { kind: 'native' }, from: payer.publicKey.toBase58(), to: other!.toBase58(), amount: 9n },
      {
        eventIndex: 101,
        asset: { kind: 'spl', mint: mint!.toBase58(), decimals: 6, program: 'token' },
        from: owner!.toBase58(),
        to: wallet!.toBase58(),
        tokenAccount: destination!.toBase58(),
        amount: 4_000_000n,
      },
    ]);
    // A node whose answer lacks the token balances cannot say who was paid: UNAVAILABLE, not a guess.
    const bare = { ...response, meta: { ...response.meta!, preTokenBalances: [], postTokenBalances: [] } } as VersionedTransactionResponse;
    assert.throws(
      () => transfersInTransaction(bare),
      (e) => isFleetError(e, 'UNAVAILABLE'),
    );
  });

  it('should not be final while only confirmed, and final once the node finalizes it', async () => {
    const slow = await startSolanaRuntime({ port: 0, slotMs: 20, finalizeAfterSlots: 15 });
    try {
      const adapter = createSolanaAdapter({ rpcUrl: slow.url });
      const to = Keypair.generate().publicKey.toBase58();
      const signature = slow.airdrop(to, 5_000_000n);
      const first = landed(await adapter.transfersOf(signature));
      assert.equal(first.finality.final, false);
      assert.equal(first.finality.commitment, 'confirmed');
      assert.deepEqual(
        first.transfers.map((t) => [t.to, t.amount]),
        [[to, 5_000_000n]],
      );
      const later = await waitFor(
        async () => {
          const r = landed(await adapter.transfersOf(signature));
          return r.finality.final ? r : undefined;
        },
        { timeoutMs: 10_000, what: 'finalized' },
      );
      assert.deepEqual(later.finality, { final: true, confirmations: null, commitment: 'finalized' });
    } finally {
      await slow.stop();
    }
  });

  it('should say failed for a transaction that landed with an error, not_found for one never seen', async () => {
    const poor = Keypair.generate();
    runtime.airdrop(poor.publicKey.toBase58(), 1_000_000n);
    const tx = new Transaction({ feePayer: poor.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      SystemProgram.transfer({ fromPubkey: poor.publicKey, toPubkey: Keypair.generate().publicKey, lamports: 5_000_000 }),
    );
    tx.sign(poor);
    const signature = await conn.sendRawTransaction(tx.serialize(), { skipPreflight: true });
    assert.equal((await solana.transfersOf(signature)).status, 'failed');
    assert.deepEqual(await solana.transfersOf(bs58.encode(randomBytes(64))), { status: 'not_found' });
  });

  describe('a deposit claim weighed against the chain', () => {
    it('should credit a USDC-like deposit claimed for the owning wallet at its index, once, and fail claims naming the token account, another mint or another index', async () => {
      const { mint, holder, source } = await usdcLike();
      const wallet = Keypair.generate().publicKey;
      const destination = await tokenAccount(mint, wallet);
      const txHash = await send(
        [
          SystemProgram.transfer({ fromPubkey: payer.publicKey, toPubkey: wallet, lamports: 1_000_000 }),
          createTransferCheckedInstruction(source, mint, destination, holder.publicKey, 25_000_000n, 6),
        ],
        [holder],
      );
      const report = await solana.transfersOf(txHash);
      const claim = { chain: 'SOL', txHash, eventIndex: 1, token: mint.toBase58(), amount: 25_000_000n, toAddress: wallet.toBase58() } as const;
      const verdict = judgeClaim(report, claim);
      assert.equal(verdict.kind, 'final');
      assert.equal(verdict.kind === 'final' && verdict.creditKey, `SOL:${txHash}:token:1`);
      assert.deepEqual(verdict.kind === 'final' && verdict.transfer.asset, { kind: 'spl', mint: mint.toBase58(), decimals: 6, program: 'token' });
      // The same transaction's SOL transfer is another credit, under another key.
      const sol = judgeClaim(report, { ...claim, eventIndex: 0, token: 'native', amount: 1_000_000n });
      assert.equal(sol.kind === 'final' && sol.creditKey, `SOL:${txHash}:native:0`);
      assert.equal(judgeClaim(report, { ...claim, toAddress: destination.toBase58() }).kind, 'mismatch');
      assert.equal(judgeClaim(report, { ...claim, token: Keypair.generate().publicKey.toBase58() }).kind, 'mismatch');
      for (const eventIndex of [0, 2, 100, 101]) assert.equal(judgeClaim(report, { ...claim, eventIndex }).kind, 'mismatch', `eventIndex ${eventIndex}`);
    });

    it('should credit what a Token-2022 transfer-fee mint delivered, not the gross amount, whether the fee is named or computed by the program', async () => {
      // 1 % fee (at most 1 token): 10,000 of 1,000,000 base units is withheld in the destination account.
      const mint = Keypair.generate();
      const program = TOKEN_2022_PROGRAM_ID;
      await send(
        [
          await newAccount(mint, getMintLen([ExtensionType.TransferFeeConfig]), program),
          createInitializeTransferFeeConfigInstruction(mint.publicKey, payer.publicKey, payer.publicKey, 100, 1_000_000n, program),
          createInitializeMint2Instruction(mint.publicKey, 6, payer.publicKey, null, program),
        ],
        [mint],
      );
      const feeAccount = async (owner: PublicKey) => {
        const account = Keypair.generate();
        const space = getAccountLen([ExtensionType.TransferFeeAmount]);
        await send(
          [await newAccount(account, space, program), createInitializeAccount3Instruction(account.publicKey, mint.publicKey, owner, program)],
          [account],
        );
        return account.publicKey;
      };
      const holder = Keypair.generate();
      const source = await feeAccount(holder.publicKey);
      await send([createMintToInstruction(mint.publicKey, source, payer.publicKey, 10n ** 12n, [], program)]);
      const [w1, w2, w3] = [Keypair.generate().publicKey, Keypair.generate().publicKey, Keypair.generate().publicKey];
      const [d1, d2, d3] = [await feeAccount(w1), await feeAccount(w2), await feeAccount(w3)];
      const txHash = await send(
        [
          createTransferCheckedInstruction(source, mint.publicKey, d1, holder.publicKey, 1_000_000n, 6, [], program),
          createTransferCheckedWithFeeInstruction(source, mint.publicKey, d2, holder.publicKey, 1_000_000n, 6, 10_000n, [], program),
          // Two into one account, fees not named: what each delivered cannot be told apart.
          createTransferCheckedInstruction(source, mint.publicKey, d3, holder.publicKey, 300_000n, 6, [], program),
          createTransferCheckedInstruction(source, mint.publicKey, d3, holder.publicKey, 500_000n, 6, [], program),
        ],
        [holder],
      );
      await waitFor(async () => (await conn.getSignatureStatus(txHash)).value?.confirmationStatus !== undefined, { what: 'landed' });
      const report = landed(await solana.transfersOf(txHash));
      assert.deepEqual(
        report.transfers.map((t) => [t.eventIndex, t.to, t.amount, t.fee]),
        [
          [0, w1.toBase58(), 990_000n, 10_000n],
          [1, w2.toBase58(), 990_000n, 10_000n],
        ],
      );
      const claim = { chain: 'SOL', txHash, eventIndex: 0, token: mint.publicKey.toBase58(), amount: 990_000n, toAddress: w1.toBase58() } as const;
      assert.notEqual(judgeClaim(report, claim).kind, 'mismatch');
      const gross = judgeClaim(report, { ...claim, amount: 1_000_000n });
      assert.equal(gross.kind, 'mismatch');
      assert.match(gross.kind === 'mismatch' ? gross.reason : '', /moves 990000 \(1000000 less a transfer fee of 10000 withheld by the mint\), not 1000000/);
    });

    it('should keep a claim confirming until the node finalizes its transaction', async () => {
      const slow = await startSolanaRuntime({ port: 0, slotMs: 20, finalizeAfterSlots: 15 });
      try {
        const adapter = createSolanaAdapter({ rpcUrl: slow.url });
        const to = Keypair.generate().publicKey.toBase58();
        const txHash = slow.airdrop(to, 4_000_000n);
        const report = landed(await adapter.transfersOf(txHash));
        const claim = { chain: 'SOL', txHash, eventIndex: report.transfers[0]!.eventIndex, token: 'native', amount: 4_000_000n, toAddress: to } as const;
        assert.equal(judgeClaim(report, claim).kind, 'confirming');
        await waitFor(async () => judgeClaim(await adapter.transfersOf(txHash), claim).kind === 'final', { timeoutMs: 10_000, what: 'final' });
      } finally {
        await slow.stop();
      }
    });
  });

  it('should refuse something that is not a signature with VALIDATION_FAILED', async () => {
    await assert.rejects(solana.transfersOf(`0x${'ab'.repeat(32)}`), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });
});
