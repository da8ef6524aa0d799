// The wallet service against real chain runtimes: a litesvm-backed Solana JSON-RPC, anvil for EVM,
// and the Aptos SDK verifying signatures offline. Keys live in the KMS emulator only.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  AccountAddress,
  ChainId,
  Deserializer,
  EntryFunction,
  RawTransaction,
  SignedTransaction,
  SimpleTransaction,
  type TransactionAuthenticatorEd25519,
  TransactionPayloadEntryFunction,
  U64,
  generateSigningMessageForTransaction,
} from '@aptos-labs/ts-sdk';
import { localEd25519Signer, solanaAddress } from '@wallet-fleet/chains';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { createSchemaName, createFleetVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import { Connection, Keypair, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import {
  ACCOUNT_SIZE,
  MINT_SIZE,
  TOKEN_PROGRAM_ID,
  createInitializeAccount3Instruction,
  createInitializeMint2Instruction,
  createMintToInstruction,
} from '@solana/spl-token';
import fc from 'fast-check';
import {
  type Hex,
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  erc20Abi,
  http,
  parseEther,
  parseGwei,
  parseTransaction,
  recoverTransactionAddress,
  serializeTransaction,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { caller, startWalletService, unusedChains, type WalletService } from './support.js';
// anvil's first dev account (public, well-known test key).
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('wallet balances, transfers and signing on local chains', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let solana: SolanaRuntime;
  let anvil: Anvil;
  let service: WalletService;
  let client: Broker;

  before(async () => {
    vhost = await createFleetVhost('wallet-chains');
    schema = await createSchemaName('wallet_chains');
    kms = await startKmsEmulator({ port: 0 });
    solana = await startSolanaRuntime({ port: 0 });
    anvil = await startAnvil({ port: 0 });
    service = await startWalletService(vhost, schema, {
      KMS_ENDPOINT: kms.endpoint,
      SOLANA_RPC_URL: solana.url,
      ...unusedChains,
      EVM_RPC_URL: anvil.url,
      SIGN_RATE_PER_MINUTE: '40',
    });
    client = await caller(vhost, 'backend');
  });

  after(async () => {
    await client?.stop();
    await service?.stop();
    await anvil?.stop();
    await solana?.stop();
    await kms?.stop();
    await vhost?.drop();
    await schema?.drop();
  });

  it('should move lamports with a KMS signature that the Solana runtime executes, balances adding up', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    solana.airdrop(w.address, 2_000_000_000n);
    const before = await client.request('wallet.balance.get', { userId, walletId: w.walletId });
    assert.deepEqual(before, { walletId: w.walletId, chain: 'SOL', amount: '2000000000', decimals: 9, symbol: 'SOL' });

    const recipient = solanaAddress(localEd25519Signer().publicKey);
    const sent = await client.request(
      'wallet.transaction.transferSol',
      { userId, walletId: w.walletId, recipient, amount: '500000000' },
      { timeoutMs: 30_000 },
    );
    assert.equal(sent.status, 'confirmed');
    assert.match(sent.signature, /^[1-9A-HJ-NP-Za-km-z]{64,88}$/);

    // Our own transfer invalidated the cached balance: the new one is read from the chain.
    const after = await client.request('wallet.balance.get', { userId, walletId: w.walletId });
    const fee = 2_000_000_000n - 500_000_000n - BigInt(after.amount);
    assert.equal(fee, 5000n, `fee of one signature, got ${fee}`);
    const res = await fetch(solana.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'getBalance', params: [recipient] }),
    });
    assert.equal(((await res.json()) as { result: { value: number } }).result.value, 500_000_000);
  });

  it("should read back the SPL token balance of a wallet's token account", async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    const payer = Keypair.generate();
    solana.airdrop(payer.publicKey.toBase58(), 1_000_000_000n);
    const conn = new Connection(solana.url, 'confirmed');
    const mint = Keypair.generate();
    const account = Keypair.generate();
    const tx = new Transaction({ feePayer: payer.publicKey, ...(await conn.getLatestBlockhash()) }).add(
      SystemProgram.createAccount({
        fromPubkey: payer.publicKey,
        newAccountPubkey: mint.publicKey,
        lamports: await conn.getMinimumBalanceForRentExemption(MINT_SIZE),
        space: MINT_SIZE,
        programId: TOKEN_PROGRAM_ID,
      }),
      createInitializeMint2Instruction(mint.publicKey, 6, payer.publicKey, null),
      SystemProgram.createAccount({
        fromPubkey: payer.publicKey,
        newAccountPubkey: account.publicKey,
        lamports: await conn.getMinimumBalanceForRentExemption(ACCOUNT_SIZE),
        space: ACCOUNT_SIZE,
        programId: TOKEN_PROGRAM_ID,
      }),
      createInitializeAccount3Instruction(account.publicKey, mint.publicKey, new PublicKey(w.address)),
      createMintToInstruction(mint.publicKey, account.publicKey, payer.publicKey, 4_200_000n),
    );
    tx.sign(payer, mint, account);
    await conn.sendRawTransaction(tx.serialize());
    const tokens = await waitForTokens(userId, w.walletId);
    assert.deepEqual(tokens, [{ mint: mint.publicKey.toBase58(), account: account.publicKey.toBase58(), amount: '4200000', decimals: 6 }]);
    const eth = await client.request('wallet.management.create', { userId, chain: 'ETH' });
    await assert.rejects(client.request('wallet.balance.getTokens', { userId, walletId: eth.walletId }), (e) => isFleetError(e, ErrorCode.UNSUPPORTED_CHAIN));
  });

  async function waitForTokens(userId: string, walletId: string) {
    const tokens = async () => (await client.request('wallet.balance.getTokens', { userId, walletId })).tokens;
    return waitFor(
      async () => {
        const t = await tokens();
        return t.length > 0 ? t : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 50, what: 'a token account' },
    );
  }

  it('should refuse transfers it cannot make, with the right code', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    const eth = await client.request('wallet.management.create', { userId, chain: 'ETH' });
    const to = solanaAddress(localEd25519Signer().publicKey);
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e) => (isFleetError(e) ? e.code : String(e)),
      );
    assert.equal(
      await code(client.request('wallet.transaction.transferSol', { userId, walletId: w.walletId, recipient: to, amount: '1000' })),
      ErrorCode.INSUFFICIENT_FUNDS,
    );
    assert.equal(
      await code(client.request('wallet.transaction.transferSol', { userId, walletId: w.walletId, recipient: '0OIl'.repeat(10), amount: '1000' })),
      ErrorCode.INVALID_RECIPIENT,
    );
    assert.equal(
      await code(client.request('wallet.transaction.transferSol', { userId, walletId: eth.walletId, recipient: to, amount: '1000' })),
      ErrorCode.UNSUPPORTED_CHAIN,
    );
    assert.equal(
      await code(client.request('wallet.transaction.transferSol', { userId: 'mallory', walletId: w.walletId, recipient: to, amount: '1000' })),
      ErrorCode.WALLET_NOT_FOUND,
    );
  });

  it('should sign a Solana transaction the wallet pays for, and refuse one it does not sign', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'SOL' });
    const build = (payer: string) => {
      const tx = new Transaction({ feePayer: new PublicKey(payer), recentBlockhash: '11111111111111111111111111111111' });
      tx.add(SystemProgram.transfer({ fromPubkey: new PublicKey(payer), toPubkey: new PublicKey(solanaAddress(localEd25519Signer().publicKey)), lamports: 1 }));
      return tx.serialize({ requireAllSignatures: false, verifySignatures: false }).toString('base64');
    };
    const signed = await client.request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: build(w.address) });
    const tx = Transaction.from(Buffer.from(signed.signedTransaction, 'base64'));
    assert.ok(tx.verifySignatures(), 'the signature verifies against the wallet address');
    await assert.rejects(
      client.request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: build(solanaAddress(localEd25519Signer().publicKey)) }),
      (e) => isFleetError(e, ErrorCode.VALIDATION_FAILED),
    );
    // The wallet is known in memory now (signing caches it): another user still cannot sign with it.
    await assert.rejects(
      client.request('wallet.transaction.sign', { userId: `mallory-${randomUUID()}`, walletId: w.walletId, transaction: build(w.address) }),
      (e) => isFleetError(e, ErrorCode.WALLET_NOT_FOUND),
    );
  });

  it('should sign an EIP-1559 transfer that anvil mines from the derived address', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'ETH' });
    const pub = createPublicClient({ chain: foundry, transport: http(anvil.url) });
    const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain: foundry, transport: http(anvil.url) });
    await pub.waitForTransactionReceipt({ hash: await dev.sendTransaction({ to: w.address as Hex, value: parseEther('3') }), pollingInterval: 20 });
    assert.equal((await client.request('wallet.balance.get', { userId, walletId: w.walletId })).amount, parseEther('3').toString());

    const recipient = '0x000000000000000000000000000000000000dEaD';
    const unsigned = serializeTransaction({
      type: 'eip1559',
      chainId: 31337,
      nonce: 0,
      to: recipient,
      value: parseEther('1'),
      gas: 21000n,
      maxFeePerGas: parseGwei('20'),
      maxPriorityFeePerGas: parseGwei('1'),
    });
    const signed = await client.request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: unsigned });
    const hash = await pub.sendRawTransaction({ serializedTransaction: signed.signedTransaction as Hex });
    assert.equal(hash, signed.hash);
    const receipt = await pub.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    assert.equal(receipt.status, 'success');
    assert.equal(receipt.from.toLowerCase(), w.address.toLowerCase());
    assert.equal(await pub.getBalance({ address: recipient }), parseEther('1'));
  });

  it('should sign random EVM transactions so that every signature is low-s and recovers to the wallet', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'ETH' });
    const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
    const tx = fc.record({
      type: fc.constantFrom('eip1559' as const, 'legacy' as const),
      nonce: fc.nat({ max: 1_000_000 }),
      to: fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex),
      value: fc.bigInt({ min: 0n, max: 10n ** 24n }),
      gas: fc.bigInt({ min: 21000n, max: 10_000_000n }),
      fee: fc.bigInt({ min: 1n, max: 10n ** 12n }),
      // Calldata the signing policy understands without an allowance: none, or an ERC-20 transfer.
      data: fc.option(
        fc
          .record({ to: fc.uint8Array({ minLength: 20, maxLength: 20 }), amount: fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }) })
          .map(({ to, amount }) => encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [`0x${Buffer.from(to).toString('hex')}`, amount] })),
        { nil: undefined },
      ),
    });
    await fc.assert(
      fc.asyncProperty(tx, async (t) => {
        const unsigned =
          t.type === 'eip1559'
            ? serializeTransaction({
                type: 'eip1559',
                chainId: 31337,
                nonce: t.nonce,
                to: t.to,
                value: t.value,
                gas: t.gas,
                maxFeePerGas: t.fee,
                maxPriorityFeePerGas: t.fee,
                ...(t.data ? { data: t.data } : {}),
              })
            : serializeTransaction({
                type: 'legacy',
                chainId: 31337,
                nonce: t.nonce,
                to: t.to,
                value: t.value,
                gas: t.gas,
                gasPrice: t.fee,
                ...(t.data ? { data: t.data } : {}),
              });
        const signed = await client.request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: unsigned });
        const parsed = parseTransaction(signed.signedTransaction as Hex);
        assert.ok(BigInt(parsed.s!) <= HALF_N, 'low s (EIP-2)');
        assert.equal((await recoverTransactionAddress({ serializedTransaction: signed.signedTransaction as never })).toLowerCase(), w.address.toLowerCase());
      }),
      { numRuns: 30 },
    );
  });

  it('should sign an Aptos raw transaction whose signature the Aptos SDK verifies', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'APTOS' });
    const payload = new TransactionPayloadEntryFunction(
      EntryFunction.build('0x1::aptos_account', 'transfer', [], [AccountAddress.from('0x2'), new U64(1234n)]),
    );
    const raw = new RawTransaction(AccountAddress.from(w.address), 0n, payload, 2000n, 100n, BigInt(Math.floor(Date.now() / 1000) + 600), new ChainId(4));
    const signed = await client.request('wallet.transaction.sign', {
      userId,
      walletId: w.walletId,
      transaction: Buffer.from(raw.bcsToBytes()).toString('base64'),
    });
    const tx = SignedTransaction.deserialize(new Deserializer(Buffer.from(signed.signedTransaction, 'base64')));
    const auth = tx.authenticator as TransactionAuthenticatorEd25519;
    const message = generateSigningMessageForTransaction(new SimpleTransaction(raw));
    assert.equal(auth.public_key.verifySignature({ message, signature: auth.signature }), true);
    assert.equal(tx.raw_txn.sender.toStringLong(), w.address);
  });

  it('should rate-limit signing per user and answer UNAVAILABLE for a chain node that is down', async () => {
    const userId = `u-${randomUUID()}`;
    const w = await client.request('wallet.management.create', { userId, chain: 'APTOS' });
    const payload = new TransactionPayloadEntryFunction(EntryFunction.build('0x1::aptos_account', 'transfer', [], [AccountAddress.from('0x2'), new U64(1n)]));
    const raw = new RawTransaction(AccountAddress.from(w.address), 0n, payload, 2000n, 100n, 9_999_999_999n, new ChainId(4));
    const body = { userId, walletId: w.walletId, transaction: Buffer.from(raw.bcsToBytes()).toString('base64') };
    const outcomes = [];
    for (let i = 0; i < 41; i++)
      outcomes.push(
        await client.request('wallet.transaction.sign', body).then(
          () => 'ok',
          (e) => (isFleetError(e) ? e.code : String(e)),
        ),
      );
    assert.deepEqual(outcomes, [...Array(40).fill('ok'), ErrorCode.RATE_LIMITED]);
    await assert.rejects(client.request('wallet.balance.get', { userId, walletId: w.walletId }), (e) => isFleetError(e, ErrorCode.UNAVAILABLE));
  });
});
