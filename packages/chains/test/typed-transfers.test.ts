// Transfers the adapters build themselves (what wallet.transaction.transfer signs), against a real
// anvil node and the litesvm Solana runtime: the built transaction decodes to the intended
// transfer, executes, and `fate` tells what became of signed bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { getAssociatedTokenAddressSync, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID } from '@solana/spl-token';
import { Keypair, PublicKey } from '@solana/web3.js';
import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { createPublicClient, createWalletClient, getAddress, type Hex, http, parseEther, parseTransaction } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import {
  createEvmAdapter,
  createSolanaAdapter,
  decodeEvmTransaction,
  decodeSolanaTransaction,
  ethereumAddress,
  localEd25519Signer,
  localSecp256k1Signer,
  signEvmTransaction,
  solanaAddress,
} from '../src/index.js';
import { TEST_TOKEN_ABI, TEST_TOKEN_BYTECODE } from './fixtures/test-token.js';

// anvil's first dev account (public, well-known test key).
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('transfers built by the adapters', function () {
  this.timeout(30_000);
  let anvil: Anvil;
  let solana: SolanaRuntime;
  const dev = privateKeyToAccount(DEV_KEY);
  const reader = () => createPublicClient({ chain: foundry, transport: http(anvil.url) });
  const devWallet = () => createWalletClient({ account: dev, chain: foundry, transport: http(anvil.url) });
  const evmAddress = () => getAddress(`0x${randomBytes(20).toString('hex')}`);
  const newSolAddress = () => solanaAddress(localEd25519Signer().publicKey);

  before(async () => {
    anvil = await startAnvil({ port: 0 });
    solana = await startSolanaRuntime({ port: 0, slotMs: 20 });
  });
  after(async () => {
    await anvil?.stop();
    await solana?.stop();
  });

  /** A secp256k1 wallet holding 10 ETH. */
  async function fundedEvmSigner() {
    const signer = localSecp256k1Signer();
    const from = ethereumAddress(signer.publicKey);
    await reader().waitForTransactionReceipt({ hash: await devWallet().sendTransaction({ to: from as Hex, value: parseEther('10') }) });
    return { signer, from };
  }

  it('should build an EIP-1559 ETH transfer with estimated fees that anvil mines, and an ERC-20 transfer that moves the tokens', async () => {
    const evm = createEvmAdapter({ rpcUrl: anvil.url });
    const { signer, from } = await fundedEvmSigner();
    const to = evmAddress();
    const unsigned = await evm.buildTransfer({ from, to, amount: 12345n, nonce: 0, chainId: 31337 });
    const tx = parseTransaction(unsigned);
    assert.equal(tx.type, 'eip1559');
    assert.equal(tx.chainId, 31337);
    assert.equal(tx.gas, 21_000n);
    assert.ok(tx.maxFeePerGas! > tx.maxPriorityFeePerGas! && tx.maxPriorityFeePerGas! > 0n, 'fees estimated from the node');
    assert.deepEqual(decodeEvmTransaction(unsigned, { from, chainId: 31337 }).actions, [{ kind: 'native-transfer', from, to, amount: '12345' }]);
    const signed = await signEvmTransaction(unsigned, signer);
    assert.equal(await evm.fate(signed.signedTransaction), 'pending', 'signed, not sent, nonce unused: still sendable');
    await evm.sendRawTransaction(signed.signedTransaction);
    assert.equal(await reader().getBalance({ address: to }), 12345n);
    assert.equal(await evm.fate(signed.signedTransaction), 'confirmed');

    const deployed = await devWallet().deployContract({ abi: TEST_TOKEN_ABI, bytecode: TEST_TOKEN_BYTECODE, args: [6, 10n ** 12n] });
    const token = getAddress((await reader().waitForTransactionReceipt({ hash: deployed })).contractAddress!);
    await reader().waitForTransactionReceipt({
      hash: await devWallet().writeContract({ address: token, abi: TEST_TOKEN_ABI, functionName: 'transfer', args: [from as Hex, 5_000_000n] }),
    });
    const tokenTx = await evm.buildTransfer({ from, to, amount: 1_500_000n, token, nonce: 1, chainId: 31337 });
    assert.deepEqual(decodeEvmTransaction(tokenTx, { from, chainId: 31337 }).actions, [
      { kind: 'token-transfer', program: token, token, from, to, amount: '1500000' },
    ]);
    await evm.sendRawTransaction((await signEvmTransaction(tokenTx, signer)).signedTransaction);
    const balanceOf = (a: string) => reader().readContract({ address: token, abi: TEST_TOKEN_ABI, functionName: 'balanceOf', args: [a as Hex] });
    assert.deepEqual([await balanceOf(from), await balanceOf(to)], [3_500_000n, 1_500_000n]);

    // More tokens than the wallet holds: the estimate runs it and it would revert, before any signing.
    await assert.rejects(evm.buildTransfer({ from, to, amount: 10n ** 11n, token, nonce: 2, chainId: 31337 }), (e: unknown) =>
      isFleetError(e, ErrorCode.SUBMISSION_FAILED),
    );
    await assert.rejects(evm.buildTransfer({ from, to, amount: parseEther('1000'), nonce: 2, chainId: 31337 }), (e: unknown) =>
      isFleetError(e, ErrorCode.INSUFFICIENT_FUNDS),
    );
  });

  it('should call signed bytes expired once another transaction took their nonce', async () => {
    const evm = createEvmAdapter({ rpcUrl: anvil.url });
    const { signer, from } = await fundedEvmSigner();
    const never = await signEvmTransaction(await evm.buildTransfer({ from, to: evmAddress(), amount: 1n, nonce: 0, chainId: 31337 }), signer);
    const other = await signEvmTransaction(await evm.buildTransfer({ from, to: evmAddress(), amount: 2n, nonce: 0, chainId: 31337 }), signer);
    await evm.sendRawTransaction(other.signedTransaction);
    assert.equal(await evm.fate(never.signedTransaction), 'expired');
    assert.equal(await evm.fate(other.signedTransaction), 'confirmed');
  });

  for (const [name, program] of [
    ['Token', TOKEN_PROGRAM_ID],
    ['Token-2022', TOKEN_2022_PROGRAM_ID],
  ] as const) {
    it(`should build an SPL ${name} transferChecked with the mint's decimals, creating the recipient's token account only when it is missing`, async () => {
      const sol = createSolanaAdapter({ rpcUrl: solana.url });
      const signer = localEd25519Signer();
      const from = solanaAddress(signer.publicKey);
      solana.airdrop(from, 1_000_000_000n);
      const mint = Keypair.generate().publicKey;
      const ata = (owner: string) => getAssociatedTokenAddressSync(mint, new PublicKey(owner), true, program).toBase58();
      solana.setMint(mint.toBase58(), { decimals: 4, programId: program.toBase58() });
      solana.setTokenAccount(ata(from), { mint: mint.toBase58(), owner: from, amount: 90_000n, programId: program.toBase58() });

      const missing = newSolAddress();
      const first = decodeSolanaTransaction(await sol.buildTokenTransfer({ from, to: missing, mint: mint.toBase58(), amount: 500n }), { wallet: from });
      assert.deepEqual(
        first.actions.map((a) => a.kind),
        ['create-token-account', 'token-transfer'],
      );
      assert.deepEqual(first.actions[0], {
        kind: 'create-token-account',
        payer: from,
        account: ata(missing),
        owner: missing,
        mint: mint.toBase58(),
        idempotent: true,
      });

      const to = newSolAddress();
      solana.setTokenAccount(ata(to), { mint: mint.toBase58(), owner: to, amount: 0n, programId: program.toBase58() });
      const unsigned = await sol.buildTokenTransfer({ from, to, mint: mint.toBase58(), amount: 1234n });
      assert.deepEqual(decodeSolanaTransaction(unsigned, { wallet: from }).actions, [
        { kind: 'token-transfer', program: program.toBase58(), token: mint.toBase58(), from: ata(from), to: ata(to), amount: '1234', decimals: 4 },
      ]);
      await sol.sendAndConfirm(await sol.signTransaction(unsigned, signer));
      const balances = Object.fromEntries((await sol.getTokenBalances(to)).map((b) => [b.account, b.amount]));
      assert.deepEqual(balances, { [ata(to)]: 1234n });
      assert.deepEqual(
        (await sol.getTokenBalances(from)).map((b) => b.amount),
        [90_000n - 1234n],
      );

      await assert.rejects(sol.buildTokenTransfer({ from, to, mint: newSolAddress(), amount: 1n }), (e: unknown) =>
        isFleetError(e, ErrorCode.VALIDATION_FAILED),
      );
    });
  }
});
