// wallet.transaction.transfer against real chains: the service builds SOL, SPL, ETH and ERC-20
// transfers itself, puts them through the same decoder and policy as raw signing, signs them in the
// KMS emulator and sends them to the litesvm Solana runtime and anvil.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { decodeEvmTransaction, decodeSolanaTransaction, localEd25519Signer, solanaAddress } from '@wallet-fleet/chains';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost } from '@wallet-fleet/testing';
import { TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, getAssociatedTokenAddressSync, unpackAccount } from '@solana/spl-token';
import { Connection, Keypair, PublicKey, VersionedTransaction } from '@solana/web3.js';
import fc from 'fast-check';
import pg from 'pg';
import { type Hex, type TransactionSerializable, createPublicClient, createWalletClient, getAddress, http, parseEther, serializeTransaction } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { TEST_TOKEN_ABI, TEST_TOKEN_BYTECODE } from '../../../packages/chains/test/fixtures/test-token.js';
import { caller, startWalletService, unusedChains, type WalletService } from './support.js';

// anvil's first dev account (public, well-known test key).
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('wallet.transaction.transfer: typed transfers built, governed, signed and sent by the service', function () {
  this.timeout(120_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let solana: SolanaRuntime;
  let anvil: Anvil;
  let service: WalletService;
  let client: Broker;
  let ops: Broker;
  let db: pg.Pool;
  const dev = privateKeyToAccount(DEV_KEY);
  const reader = () => createPublicClient({ chain: foundry, transport: http(anvil.url) });
  const devWallet = () => createWalletClient({ account: dev, chain: foundry, transport: http(anvil.url) });
  const evmAddress = () => getAddress(`0x${randomBytes(20).toString('hex')}`);
  const solAddress = () => solanaAddress(localEd25519Signer().publicKey);

  const env = () => ({
    KMS_ENDPOINT: kms.endpoint,
    SOLANA_RPC_URL: solana.url,
    ...unusedChains,
    EVM_RPC_URL: anvil.url,
    SIGN_RATE_PER_MINUTE: '10000',
  });

  before(async () => {
    vhost = await createFleetVhost('wallet-typed');
    schema = await createSchemaName('wallet_typed');
    kms = await startKmsEmulator({ port: 0 });
    solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    anvil = await startAnvil({ port: 0 });
    service = await startWalletService(vhost, schema, env());
    client = await caller(vhost, 'backend');
    ops = await caller(vhost, 'ops');
    const { databaseUrl } = await backingServices();
    db = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema.schema}` });
  });

  after(async () => {
    await db?.end();
    await client?.stop();
    await ops?.stop();
    await service?.stop();
    await anvil?.stop();
    await solana?.stop();
    await kms?.stop();
    await vhost?.drop();
    await schema?.drop();
  });

  type Asset = { type: 'native' } | { type: 'token'; mint: string } | { type: 'token'; contract: string };
  const send = (w: { userId: string; walletId: string }, asset: Asset, recipient: string, amount: bigint, idempotencyKey: string = randomUUID()) =>
    client.request(
      'wallet.transaction.transfer',
      { userId: w.userId, walletId: w.walletId, asset, recipient, amount: amount.toString(), idempotencyKey },
      { timeoutMs: 60_000 },
    );
  const wallet = (chain: 'SOL' | 'ETH' | 'APTOS') => client.request('wallet.management.create', { userId: `u-${randomUUID()}`, chain });
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => {
        if (!(e instanceof FleetError)) throw e;
        return e;
      },
    );

  // --- EVM helpers: a funded wallet, a token, balances read from anvil itself.
  async function ethWallet(eth = '100') {
    const w = await wallet('ETH');
    await reader().waitForTransactionReceipt({ hash: await devWallet().sendTransaction({ to: w.address as Hex, value: parseEther(eth) }) });
    return w;
  }
  async function deployToken(holder: string, amount: bigint): Promise<Hex> {
    const deployed = await devWallet().deployContract({ abi: TEST_TOKEN_ABI, bytecode: TEST_TOKEN_BYTECODE, args: [6, 10n ** 30n] });
    const token = getAddress((await reader().waitForTransactionReceipt({ hash: deployed })).contractAddress!);
    const paid = await devWallet().writeContract({ address: token, abi: TEST_TOKEN_ABI, functionName: 'transfer', args: [holder as Hex, amount] });
    await reader().waitForTransactionReceipt({ hash: paid });
    return token;
  }
  const tokenBalance = (token: Hex, a: string) => reader().readContract({ address: token, abi: TEST_TOKEN_ABI, functionName: 'balanceOf', args: [a as Hex] });
  const ethBalance = (a: string) => reader().getBalance({ address: a as Hex });
  /** What the transaction `hash` on anvil asked for, decoded by the same decoder the policy reads. */
  async function decodedOnChain(hash: string, from: string) {
    const tx = await reader().getTransaction({ hash: hash as Hex });
    const unsigned: TransactionSerializable = {
      type: 'eip1559',
      chainId: tx.chainId!,
      nonce: tx.nonce,
      gas: tx.gas,
      maxFeePerGas: tx.maxFeePerGas!,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas!,
      to: tx.to!,
      value: tx.value,
      data: tx.input,
    };
    return { tx, intent: decodeEvmTransaction(serializeTransaction(unsigned), { from, chainId: 31337 }) };
  }

  // --- Solana helpers: a mint and token accounts set up in the runtime directly.
  const ata = (mint: string, owner: string, program: PublicKey) =>
    getAssociatedTokenAddressSync(new PublicKey(mint), new PublicKey(owner), true, program).toBase58();
  function splMint(program: PublicKey = TOKEN_PROGRAM_ID) {
    const mint = Keypair.generate().publicKey.toBase58();
    solana.setMint(mint, { decimals: 6, programId: program.toBase58() });
    return {
      mint,
      /** Gives `owner` its associated token account of this mint, holding `amount`. */
      account: (owner: string, amount = 0n) => solana.setTokenAccount(ata(mint, owner, program), { mint, owner, amount, programId: program.toBase58() }),
      balance: async (owner: string) => {
        const address = new PublicKey(ata(mint, owner, program));
        const info = await new Connection(solana.url, 'confirmed').getAccountInfo(address);
        return info ? unpackAccount(address, info, program).amount : 0n;
      },
    };
  }
  async function solWallet() {
    const w = await wallet('SOL');
    solana.airdrop(w.address, 2_000_000_000n);
    return w;
  }
  const lamports = async (address: string) => BigInt(await new Connection(solana.url, 'confirmed').getBalance(new PublicKey(address)));
  /** What the transaction `signature` on the runtime asked for, decoded by the same decoder the policy reads. */
  async function solanaDecoded(signature: string, wallet: string) {
    const tx = await new Connection(solana.url, 'confirmed').getTransaction(signature, { maxSupportedTransactionVersion: 0, commitment: 'confirmed' });
    assert.ok(tx, `transaction ${signature} on chain`);
    return decodeSolanaTransaction(new VersionedTransaction(tx.transaction.message).serialize(), { wallet });
  }

  it('should move ETH and ERC-20 tokens with EIP-1559 transactions anvil mines, balances adding up', async () => {
    const w = await ethWallet();
    const to = evmAddress();
    const before = await ethBalance(w.address);
    const sent = await send(w, { type: 'native' }, to, parseEther('1.5'));
    assert.deepEqual([sent.status, sent.source, sent.checkedOnChain], ['confirmed', 'chain', true]);
    const receipt = await reader().getTransactionReceipt({ hash: sent.signature as Hex });
    const { tx, intent } = await decodedOnChain(sent.signature, w.address);
    assert.deepEqual([tx.type, tx.chainId, tx.nonce], ['eip1559', 31337, 0]);
    assert.deepEqual(intent.actions, [{ kind: 'native-transfer', from: getAddress(w.address), to, amount: parseEther('1.5').toString() }]);
    assert.equal(await ethBalance(to), parseEther('1.5'));
    assert.equal(await ethBalance(w.address), before - parseEther('1.5') - receipt.gasUsed * receipt.effectiveGasPrice, 'value plus the fee actually paid');

    const token = await deployToken(w.address, 5_000_000n);
    const paid = await send(w, { type: 'token', contract: token }, to, 1_250_000n);
    assert.equal(paid.status, 'confirmed');
    assert.deepEqual([await tokenBalance(token, w.address), await tokenBalance(token, to)], [3_750_000n, 1_250_000n]);
    assert.deepEqual((await decodedOnChain(paid.signature, w.address)).intent.actions, [
      { kind: 'token-transfer', program: token, token, from: getAddress(w.address), to, amount: '1250000' },
    ]);
    assert.equal((await reader().getTransaction({ hash: paid.signature as Hex })).nonce, 1);
  });

  it('should move SPL tokens (Token and Token-2022) with transferChecked, and native SOL, balances adding up', async () => {
    const w = await solWallet();
    for (const program of [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID]) {
      const token = splMint(program);
      const to = solAddress();
      token.account(w.address, 1_000_000n);
      token.account(to);
      const sent = await send(w, { type: 'token', mint: token.mint }, to, 400_000n);
      assert.equal(sent.status, 'confirmed');
      assert.deepEqual([await token.balance(w.address), await token.balance(to)], [600_000n, 400_000n]);
      const intent = await solanaDecoded(sent.signature, w.address);
      assert.deepEqual(intent.actions, [
        {
          kind: 'token-transfer',
          program: program.toBase58(),
          token: token.mint,
          from: ata(token.mint, w.address, program),
          to: ata(token.mint, to, program),
          amount: '400000',
          decimals: 6,
        },
      ]);
    }
    const to = solAddress();
    const before = await lamports(w.address);
    await send(w, { type: 'native' }, to, 300_000_000n);
    assert.equal(await lamports(to), 300_000_000n);
    assert.equal(await lamports(w.address), before - 300_000_000n - 5000n);
  });

  // The service runs with the default DATABASE_POOL_MAX (10): waiting transfers hold none of its connections.
  it('should sign and mine 30 concurrent ETH transfers from one wallet with distinct, gapless nonces, and continue the sequence after a restart', async () => {
    const w = await ethWallet();
    const to = evmAddress();
    const sent = await Promise.all(Array.from({ length: 30 }, (_, i) => send(w, { type: 'native' }, to, BigInt(i + 1))));
    assert.ok(sent.every((s) => s.status === 'confirmed'));
    const nonces = await Promise.all(sent.map(async (s) => (await reader().getTransaction({ hash: s.signature as Hex })).nonce));
    assert.deepEqual(
      [...nonces].sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i),
    );
    assert.equal(await ethBalance(to), (30n * 31n) / 2n);

    // A restart: the new process reads the wallet's next nonce from PostgreSQL.
    await service.stop();
    service = await startWalletService(vhost, schema, env());
    const { rows } = await db.query('SELECT next_nonce::int AS n FROM evm_nonces WHERE wallet_id = $1', [w.walletId]);
    assert.equal(rows[0].n, 30);
    const after = await send(w, { type: 'native' }, to, 100n);
    assert.equal((await reader().getTransaction({ hash: after.signature as Hex })).nonce, 30);
    assert.equal(await ethBalance(to), 465n + 100n);
  });

  it('should send 30 concurrent keyed SOL transfers from one wallet, each once, and answer their retries from the record', async () => {
    const w = await solWallet();
    const to = solAddress();
    const before = await lamports(w.address);
    const keys = Array.from({ length: 30 }, () => randomUUID());
    const sent = await Promise.all(keys.map((key, i) => send(w, { type: 'native' }, to, BigInt(1_000_000 + i), key)));
    assert.ok(sent.every((s) => s.status === 'confirmed' && s.source === 'chain'));
    assert.equal(new Set(sent.map((s) => s.signature)).size, 30);
    const total = 30n * 1_000_000n + (29n * 30n) / 2n;
    assert.equal(await lamports(to), total);
    assert.equal(await lamports(w.address), before - total - 30n * 5000n);
    const again = await Promise.all(keys.map((key, i) => send(w, { type: 'native' }, to, BigInt(1_000_000 + i), key)));
    assert.deepEqual(
      again.map((a) => [a.signature, a.source]),
      sent.map((s) => [s.signature, 'record']),
    );
    assert.equal(await lamports(to), total, 'nothing sent twice');
  });

  it('should make one transfer of one idempotency key, however often and concurrently it is asked', async () => {
    const w = await ethWallet();
    const to = evmAddress();
    const answers = await Promise.all(Array.from({ length: 4 }, () => send(w, { type: 'native' }, to, 777n, 'pay-once')));
    assert.equal(new Set(answers.map((a) => a.signature)).size, 1);
    const again = await send(w, { type: 'native' }, to, 777n, 'pay-once');
    assert.deepEqual(again, { signature: answers[0]!.signature, status: 'confirmed', source: 'record', checkedOnChain: false });
    assert.equal(await ethBalance(to), 777n);
    assert.equal(await reader().getTransactionCount({ address: w.address as Hex }), 1);
    const conflict = await refusal(send(w, { type: 'native' }, to, 778n, 'pay-once'));
    assert.equal(conflict.code, ErrorCode.IDEMPOTENCY_CONFLICT);
    const token = await deployToken(w.address, 1000n);
    assert.equal((await refusal(send(w, { type: 'token', contract: token }, to, 777n, 'pay-once'))).code, ErrorCode.IDEMPOTENCY_CONFLICT);
  });

  it('should apply policy caps to token transfers (POLICY_DENIED, nothing moved, no nonce taken)', async () => {
    const w = await ethWallet();
    const to = evmAddress();
    const token = await deployToken(w.address, 10_000n);
    await ops.request('wallet.policy.set', { scope: 'wallet', walletId: w.walletId, rules: { maxPerTransaction: { [`ETH:${token}`]: '1000' } } });
    const denied = await refusal(send(w, { type: 'token', contract: token }, to, 1001n));
    assert.equal(denied.code, ErrorCode.POLICY_DENIED);
    assert.equal(await tokenBalance(token, to), 0n);
    // The refused signing gave its nonce back: the next transfer takes nonce 0 and is mined at once.
    const ok = await send(w, { type: 'token', contract: token }, to, 1000n);
    assert.equal((await reader().getTransaction({ hash: ok.signature as Hex })).nonce, 0);
    assert.equal(await tokenBalance(token, to), 1000n);

    const s = await solWallet();
    const spl = splMint();
    spl.account(s.address, 5000n);
    const recipient = solAddress();
    spl.account(recipient);
    await ops.request('wallet.policy.set', { scope: 'wallet', walletId: s.walletId, rules: { dailyPerWallet: { [`SOL:${spl.mint}`]: '3000' } } });
    await send(s, { type: 'token', mint: spl.mint }, recipient, 2000n);
    assert.equal((await refusal(send(s, { type: 'token', mint: spl.mint }, recipient, 1001n))).code, ErrorCode.POLICY_DENIED);
    assert.deepEqual([await spl.balance(s.address), await spl.balance(recipient)], [3000n, 2000n]);
  });

  it('should refuse what it cannot build, with the right code', async () => {
    const apt = await wallet('APTOS');
    assert.equal((await refusal(send(apt, { type: 'native' }, `0x${'ab'.repeat(32)}`, 1n))).code, ErrorCode.UNSUPPORTED_CHAIN);
    const eth = await wallet('ETH');
    assert.equal((await refusal(send(eth, { type: 'token', mint: solAddress() }, evmAddress(), 1n))).code, ErrorCode.VALIDATION_FAILED);
    assert.equal((await refusal(send(eth, { type: 'native' }, solAddress(), 1n))).code, ErrorCode.INVALID_RECIPIENT);
    assert.equal((await refusal(send(eth, { type: 'native' }, evmAddress(), 1n))).code, ErrorCode.INSUFFICIENT_FUNDS);
    const sol = await wallet('SOL');
    assert.equal((await refusal(send(sol, { type: 'token', contract: evmAddress() }, solAddress(), 1n))).code, ErrorCode.VALIDATION_FAILED);
    assert.equal((await refusal(send(sol, { type: 'token', mint: solAddress() }, solAddress(), 1n))).code, ErrorCode.VALIDATION_FAILED, 'not a mint');
    const noKey = await refusal(
      client.request('wallet.transaction.transfer', {
        userId: eth.userId,
        walletId: eth.walletId,
        asset: { type: 'native' },
        recipient: evmAddress(),
        amount: '1',
      } as never),
    );
    assert.equal(noKey.code, ErrorCode.VALIDATION_FAILED);
  });

  it('should sign, execute and decode back to the same intent every random transfer within policy', async () => {
    const eth = await ethWallet('1000');
    const erc20 = await deployToken(eth.address, 10n ** 15n);
    const sol = await solWallet();
    solana.airdrop(sol.address, 50_000_000_000n);
    const spl = splMint();
    spl.account(sol.address, 10n ** 15n);
    const ethBook = [evmAddress(), evmAddress(), evmAddress()];
    const solBook = [solAddress(), solAddress(), solAddress()];
    for (const r of solBook) spl.account(r);
    const cap = (10n ** 18n).toString();
    await ops.request('wallet.policy.set', {
      scope: 'wallet',
      walletId: eth.walletId,
      rules: { allowDestinations: ethBook, maxPerTransaction: { ETH: cap, [`ETH:${erc20}`]: cap } },
    });
    await ops.request('wallet.policy.set', {
      scope: 'wallet',
      walletId: sol.walletId,
      rules: {
        allowDestinations: [...solBook, ...solBook.map((r) => ata(spl.mint, r, TOKEN_PROGRAM_ID))],
        maxPerTransaction: { SOL: cap, [`SOL:${spl.mint}`]: cap },
      },
    });

    const transfer = fc.record({
      chain: fc.constantFrom('ETH' as const, 'SOL' as const),
      token: fc.boolean(),
      to: fc.nat({ max: 2 }),
      amount: fc.bigInt({ min: 1n, max: 10n ** 9n }),
    });
    await fc.assert(
      fc.asyncProperty(transfer, async (t) => {
        if (t.chain === 'ETH') {
          const to = ethBook[t.to]!;
          const asset: Asset = t.token ? { type: 'token', contract: erc20 } : { type: 'native' };
          const before = t.token ? await tokenBalance(erc20, to) : await ethBalance(to);
          const sent = await send(eth, asset, to, t.amount);
          assert.equal((t.token ? await tokenBalance(erc20, to) : await ethBalance(to)) - before, t.amount);
          const from = getAddress(eth.address);
          assert.deepEqual(
            (await decodedOnChain(sent.signature, eth.address)).intent.actions,
            t.token
              ? [{ kind: 'token-transfer', program: erc20, token: erc20, from, to, amount: t.amount.toString() }]
              : [{ kind: 'native-transfer', from, to, amount: t.amount.toString() }],
          );
        } else {
          const to = solBook[t.to]!;
          const asset: Asset = t.token ? { type: 'token', mint: spl.mint } : { type: 'native' };
          const before = t.token ? await spl.balance(to) : await lamports(to);
          const sent = await send(sol, asset, to, t.token ? t.amount : t.amount + 1_000_000n);
          const amount = t.token ? t.amount : t.amount + 1_000_000n;
          assert.equal((t.token ? await spl.balance(to) : await lamports(to)) - before, amount);
          const program = TOKEN_PROGRAM_ID.toBase58();
          assert.deepEqual(
            (await solanaDecoded(sent.signature, sol.address)).actions,
            t.token
              ? [
                  {
                    kind: 'token-transfer',
                    program,
                    token: spl.mint,
                    from: ata(spl.mint, sol.address, TOKEN_PROGRAM_ID),
                    to: ata(spl.mint, to, TOKEN_PROGRAM_ID),
                    amount: amount.toString(),
                    decimals: 6,
                  },
                ]
              : [{ kind: 'native-transfer', from: sol.address, to, amount: amount.toString() }],
          );
        }
      }),
      { numRuns: 16 },
    );
  });
});
