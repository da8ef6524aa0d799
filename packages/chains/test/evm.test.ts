import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createWalletClient, http, parseEther, parseGwei, parseTransaction, recoverTransactionAddress, serializeTransaction, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { isFleetError } from '@wallet-fleet/contracts';
import { createEvmAdapter, ethereumAddress, localSecp256k1Signer, signEvmTransaction, type EvmAdapter } from '../src/index.js';
import { type Anvil, startAnvil } from '@wallet-fleet/dev-runtimes';

// anvil's first dev account (public, well-known test key).
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const HALF_N = secp256k1.CURVE.n >> 1n;

describe('EVM', () => {
  let anvil: Anvil;
  let evm: EvmAdapter;

  before(async () => {
    anvil = await startAnvil({ port: 0 });
    evm = createEvmAdapter({ rpcUrl: anvil.url });
  });
  after(async () => {
    await anvil?.stop();
  });

  async function fundedSigner(ether = '10') {
    const signer = localSecp256k1Signer();
    const address = ethereumAddress(signer.publicKey);
    const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain: foundry, transport: http(anvil.url) });
    const hash = await dev.sendTransaction({ to: address as Hex, value: parseEther(ether) });
    const { createPublicClient } = await import('viem');
    await createPublicClient({ chain: foundry, transport: http(anvil.url) }).waitForTransactionReceipt({ hash, pollingInterval: 20 });
    return { signer, address };
  }

  it('should answer chain id 31337', async () => {
    assert.equal(await evm.getChainId(), 31337);
  });

  it('should have an EIP-1559 transfer from the signer’s derived address mined, crediting the recipient', async () => {
    const { signer, address } = await fundedSigner();
    const recipient = ethereumAddress(localSecp256k1Signer().publicKey);
    const unsigned = serializeTransaction({
      type: 'eip1559',
      chainId: 31337,
      nonce: await evm.getTransactionCount(address),
      to: recipient as Hex,
      value: parseEther('1.5'),
      gas: 21000n,
      maxFeePerGas: parseGwei('20'),
      maxPriorityFeePerGas: parseGwei('1'),
    });
    const { signedTransaction, hash, from } = await signEvmTransaction(unsigned, signer);
    assert.equal(from, address);
    const sent = await evm.sendRawTransaction(signedTransaction, { pollMs: 20 });
    assert.equal(sent.hash, hash);
    assert.equal(await evm.getBalance(recipient), parseEther('1.5'));
    assert.ok((await evm.getBalance(address)) < parseEther('8.5'));
  });

  it('should have a legacy (EIP-155) transfer mined', async () => {
    const { signer, address } = await fundedSigner();
    const recipient = ethereumAddress(localSecp256k1Signer().publicKey);
    const unsigned = serializeTransaction({
      type: 'legacy',
      chainId: 31337,
      nonce: 0,
      to: recipient as Hex,
      value: 12345n,
      gas: 21000n,
      gasPrice: parseGwei('20'),
    });
    const { signedTransaction } = await signEvmTransaction(unsigned, signer);
    assert.equal(await recoverTransactionAddress({ serializedTransaction: signedTransaction as never }), address);
    await evm.sendRawTransaction(signedTransaction, { pollMs: 20 });
    assert.equal(await evm.getBalance(recipient), 12345n);
    assert.equal(await evm.getTransactionCount(address), 1);
  });

  it('should map a transfer larger than the balance to INSUFFICIENT_FUNDS', async () => {
    const signer = localSecp256k1Signer();
    const unsigned = serializeTransaction({
      type: 'eip1559',
      chainId: 31337,
      nonce: 0,
      to: ethereumAddress(localSecp256k1Signer().publicKey) as Hex,
      value: parseEther('1'),
      gas: 21000n,
      maxFeePerGas: parseGwei('20'),
      maxPriorityFeePerGas: parseGwei('1'),
    });
    const { signedTransaction } = await signEvmTransaction(unsigned, signer);
    await assert.rejects(evm.sendRawTransaction(signedTransaction, { pollMs: 20 }), (e) => isFleetError(e, 'INSUFFICIENT_FUNDS'));
  });

  it('should map a replayed nonce to SUBMISSION_FAILED', async () => {
    const { signer, address } = await fundedSigner();
    const tx = (value: bigint) =>
      serializeTransaction({
        type: 'eip1559',
        chainId: 31337,
        nonce: 0,
        to: ethereumAddress(localSecp256k1Signer().publicKey) as Hex,
        value,
        gas: 21000n,
        maxFeePerGas: parseGwei('20'),
        maxPriorityFeePerGas: parseGwei('1'),
      });
    await evm.sendRawTransaction((await signEvmTransaction(tx(1n), signer)).signedTransaction, { pollMs: 20 });
    await assert.rejects(evm.sendRawTransaction((await signEvmTransaction(tx(2n), signer)).signedTransaction, { pollMs: 20 }), (e) =>
      isFleetError(e, 'SUBMISSION_FAILED'),
    );
    assert.equal(await evm.getTransactionCount(address), 1);
  });

  it('should sign 100 random transactions so that each recovers the signer’s address with a low s', async () => {
    const signer = localSecp256k1Signer();
    const address = ethereumAddress(signer.publicKey);
    for (let i = 0; i < 100; i++) {
      const r = randomBytes(8);
      const common = {
        nonce: r.readUInt16LE(0),
        to: `0x${randomBytes(20).toString('hex')}` as Hex,
        value: BigInt(r.readUInt32LE(2)) * 10n ** BigInt(r[6]! % 12),
        gas: 21000n + BigInt(r[7]! * 1000),
        data: (i % 3 === 0 ? `0x${randomBytes(i % 40).toString('hex')}` : undefined) as Hex | undefined,
      };
      const tx =
        i % 3 === 0
          ? { ...common, type: 'legacy' as const, gasPrice: parseGwei(String(1 + (i % 50))), ...(i % 2 ? { chainId: 1 + i } : {}) }
          : { ...common, type: 'eip1559' as const, chainId: 1 + (i % 7) * 1000, maxFeePerGas: parseGwei('30'), maxPriorityFeePerGas: parseGwei('2') };
      const { signedTransaction } = await signEvmTransaction(serializeTransaction(tx), signer);
      assert.equal(await recoverTransactionAddress({ serializedTransaction: signedTransaction as never }), address, `tx ${i}`);
      const parsed = parseTransaction(signedTransaction);
      assert.ok(BigInt(parsed.s!) <= HALF_N, `tx ${i} has high s`);
      assert.equal(parsed.to, common.to);
      assert.equal(parsed.value ?? 0n, common.value);
    }
  });

  it('should refuse a high-s signature and one from another key with SIGNING_FAILED', async () => {
    const signer = localSecp256k1Signer();
    const unsigned = serializeTransaction({
      type: 'eip1559',
      chainId: 1,
      nonce: 0,
      to: `0x${'11'.repeat(20)}`,
      value: 1n,
      gas: 21000n,
      maxFeePerGas: 2n,
      maxPriorityFeePerGas: 1n,
    });
    const highS = {
      publicKey: signer.publicKey,
      signDigest: async (d: Uint8Array) => {
        const s = await signer.signDigest(d);
        return { r: s.r, s: secp256k1.CURVE.n - s.s };
      },
    };
    await assert.rejects(signEvmTransaction(unsigned, highS), (e) => isFleetError(e, 'SIGNING_FAILED'));
    const other = localSecp256k1Signer();
    const wrongKey = { publicKey: signer.publicKey, signDigest: (d: Uint8Array) => other.signDigest(d) };
    await assert.rejects(signEvmTransaction(unsigned, wrongKey), (e) => isFleetError(e, 'SIGNING_FAILED'));
  });

  it('should refuse input that is not an unsigned transaction with VALIDATION_FAILED', async () => {
    const signer = localSecp256k1Signer();
    await assert.rejects(signEvmTransaction('0xzz', signer), (e) => isFleetError(e, 'VALIDATION_FAILED'));
    const unsigned = serializeTransaction({
      type: 'eip1559',
      chainId: 1,
      nonce: 0,
      to: `0x${'11'.repeat(20)}`,
      value: 1n,
      gas: 21000n,
      maxFeePerGas: 2n,
      maxPriorityFeePerGas: 1n,
    });
    const { signedTransaction } = await signEvmTransaction(unsigned, signer);
    await assert.rejects(signEvmTransaction(signedTransaction, signer), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });

  it('should answer UNAVAILABLE when the node is down', async () => {
    const down = createEvmAdapter({ rpcUrl: 'http://127.0.0.1:1', requestTimeoutMs: 1000 });
    await assert.rejects(down.getBalance(`0x${'11'.repeat(20)}`), (e) => isFleetError(e, 'UNAVAILABLE'));
  });
});
