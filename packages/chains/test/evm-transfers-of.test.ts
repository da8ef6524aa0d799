// Every transfer of an EVM transaction at its on-chain identity, read back from a real anvil node:
// what deposit crediting keys on (native value at 0, ERC-20 Transfer logs at their receipt position),
// with the token's decimals from the contract, finality, and reorganisations.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createPublicClient, createWalletClient, getAddress, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { isFleetError } from '@wallet-fleet/contracts';
import { type Anvil, startAnvil } from '@wallet-fleet/dev-runtimes';
import { createEvmAdapter, creditKey, judgeClaim, type EvmAdapter, type TransactionReport } from '../src/index.js';
import { TEST_TOKEN_ABI, TEST_TOKEN_BYTECODE } from './fixtures/test-token.js';

// anvil's first dev account (public, well-known test key).
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const TRANSFER_TOPIC = 'ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';

describe('EVM transfers of a transaction at their on-chain identity', () => {
  let anvil: Anvil;
  let evm: EvmAdapter;
  const dev = privateKeyToAccount(DEV_KEY);
  const wallet = () => createWalletClient({ account: dev, chain: foundry, transport: http(anvil.url) });
  const reader = () => createPublicClient({ chain: foundry, transport: http(anvil.url) });
  const address = () => getAddress(`0x${randomBytes(20).toString('hex')}`);

  async function rpc(method: string, params: unknown[] = []): Promise<unknown> {
    const res = await fetch(anvil.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const body = (await res.json()) as { result?: unknown; error?: { message: string } };
    if (body.error) throw new Error(`${method}: ${body.error.message}`);
    return body.result;
  }
  const mined = (hash: Hex) => reader().waitForTransactionReceipt({ hash, pollingInterval: 20 });

  async function deployToken(decimals: number): Promise<Hex> {
    const hash = await wallet().deployContract({ abi: TEST_TOKEN_ABI, bytecode: TEST_TOKEN_BYTECODE, args: [decimals, 10n ** 30n] });
    return getAddress((await mined(hash)).contractAddress!);
  }
  const batch = (token: Hex, to: Hex[], amounts: bigint[]) =>
    wallet().writeContract({ address: token, abi: TEST_TOKEN_ABI, functionName: 'batchTransfer', args: [to, amounts] });
  const landed = (r: TransactionReport) => {
    assert.equal(
      r.status,
      'landed',
      JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
    );
    return r as Extract<TransactionReport, { status: 'landed' }>;
  };

  before(async () => {
    anvil = await startAnvil({ port: 0 });
    evm = createEvmAdapter({ rpcUrl: anvil.url, finality: { confirmations: 3 } });
  });
  after(async () => {
    await anvil?.stop();
  });

  it('should list each Transfer of a batch to several wallets at its receipt position, with its own amount and the decimals the contract reports', async () => {
    const token = await deployToken(6);
    const [a, b, c, d] = [address(), address(), address(), address()];
    // Logs: Note 0, Transfer a 1, b 2, c 3, a 4, zero-value d 5 (spam, left out), Note 6.
    const hash = await batch(token, [a, b, c, a, d], [1_000_000n, 2_500_000n, 3n, 4_000_000n, 0n]);
    await mined(hash);
    const report = landed(await evm.transfersOf(hash));
    const asset = { kind: 'erc20', contract: token, decimals: 6 };
    assert.deepEqual(report.transfers, [
      { eventIndex: 1, asset, from: dev.address, to: a, amount: 1_000_000n },
      { eventIndex: 2, asset, from: dev.address, to: b, amount: 2_500_000n },
      { eventIndex: 3, asset, from: dev.address, to: c, amount: 3n },
      { eventIndex: 4, asset, from: dev.address, to: a, amount: 4_000_000n },
    ]);
  });

  it('should number logs inside their own transaction, whatever else the block holds', async () => {
    const token = await deployToken(18);
    const [a, b] = [address(), address()];
    await rpc('evm_setAutomine', [false]);
    let first: Hex;
    let second: Hex;
    try {
      first = await batch(token, [a], [7n]);
      second = await batch(token, [b], [9n]);
      await rpc('evm_mine');
    } finally {
      await rpc('evm_setAutomine', [true]);
    }
    const [r1, r2] = await Promise.all([mined(first), mined(second)]);
    assert.equal(r1.blockNumber, r2.blockNumber, 'both in one block');
    assert.equal(r2.logs[1]!.logIndex, 4, 'the block numbers the second Transfer 4');
    const asset = { kind: 'erc20', contract: token, decimals: 18 };
    assert.deepEqual(landed(await evm.transfersOf(first)).transfers, [{ eventIndex: 1, asset, from: dev.address, to: a, amount: 7n }]);
    assert.deepEqual(landed(await evm.transfersOf(second)).transfers, [{ eventIndex: 1, asset, from: dev.address, to: b, amount: 9n }]);
  });

  it("should list a transaction's own value at eventIndex 0 as native", async () => {
    const to = address();
    const hash = await wallet().sendTransaction({ to, value: 12_345n });
    await mined(hash);
    assert.deepEqual(landed(await evm.transfersOf(hash)).transfers, [{ eventIndex: 0, asset: { kind: 'native' }, from: dev.address, to, amount: 12_345n }]);
  });

  it('should leave out a Transfer-shaped log from a contract that has no decimals()', async () => {
    const to = address();
    // Init code that emits LOG3(Transfer, 0x0, to) with 5 as its data and deploys nothing:
    // mstore(0, 5); log3(0, 32, TRANSFER, 0, to); stop.
    const data = `0x600560005273${to.slice(2)}60007f${TRANSFER_TOPIC}60206000a300` as Hex;
    const hash = await wallet().sendTransaction({ data } as never);
    const receipt = await mined(hash);
    assert.equal(receipt.logs.length, 1, 'the log is there');
    assert.deepEqual(landed(await evm.transfersOf(hash)).transfers, []);
  });

  it('should say failed for a reverted transaction, not_found for one the node never saw', async () => {
    const hash = await wallet().sendTransaction({ data: '0x60006000fd', gas: 100_000n } as never);
    await mined(hash);
    assert.equal((await evm.transfersOf(hash)).status, 'failed');
    assert.deepEqual(await evm.transfersOf(`0x${randomBytes(32).toString('hex')}`), { status: 'not_found' });
  });

  it('should not be final before the configured confirmations, and final once they are mined', async () => {
    const hash = await wallet().sendTransaction({ to: address(), value: 1n });
    await mined(hash);
    assert.deepEqual(landed(await evm.transfersOf(hash)).finality, { final: false, confirmations: 1n });
    await rpc('anvil_mine', ['0x1']);
    assert.deepEqual(landed(await evm.transfersOf(hash)).finality, { final: false, confirmations: 2n });
    await rpc('anvil_mine', ['0x1']);
    assert.deepEqual(landed(await evm.transfersOf(hash)).finality, { final: true, confirmations: 3n });
  });

  it("should wait for the node's finalized block by default (anvil keeps it 64 blocks behind)", async () => {
    const byTag = createEvmAdapter({ rpcUrl: anvil.url });
    const hash = await wallet().sendTransaction({ to: address(), value: 1n });
    await mined(hash);
    await rpc('anvil_mine', ['0x3f']);
    const before = landed(await byTag.transfersOf(hash)).finality;
    assert.deepEqual(before, { final: false, confirmations: 64n });
    await rpc('anvil_mine', ['0x1']);
    assert.equal(landed(await byTag.transfersOf(hash)).finality.final, true);
  });

  it('should report a credited transaction as not_found once a reorganisation removed its block', async () => {
    const token = await deployToken(6);
    const to = address();
    const snapshot = await rpc('evm_snapshot');
    const hash = await batch(token, [to], [5_000_000n]);
    await mined(hash);
    await rpc('anvil_mine', ['0x2']);
    const before = landed(await evm.transfersOf(hash));
    assert.equal(before.finality.final, true);
    assert.equal(before.transfers[0]?.amount, 5_000_000n);
    assert.equal(await rpc('evm_revert', [snapshot]), true);
    assert.deepEqual(await evm.transfersOf(hash), { status: 'not_found' });
  });

  describe('a deposit claim weighed against the chain', () => {
    it('should find one transfer announced at five eventIndex values only at the right one, under one credit key', async () => {
      const token = await deployToken(6);
      const [ours, theirs] = [address(), address()];
      const hash = await batch(token, [theirs, ours, theirs], [1_000_000n, 2_000_000n, 3_000_000n]);
      await mined(hash);
      await rpc('anvil_mine', ['0x2']);
      const report = await evm.transfersOf(hash);
      const claim = { chain: 'ETH', txHash: hash, token: token.toLowerCase(), amount: 2_000_000n, toAddress: ours.toLowerCase() } as const;
      const verdicts = [0, 1, 3, 4, 999, 2].map((eventIndex) => ({ eventIndex, verdict: judgeClaim(report, { ...claim, eventIndex }) }));
      const final = verdicts.filter((v) => v.verdict.kind === 'final');
      assert.deepEqual(
        final.map((v) => v.eventIndex),
        [2],
      );
      assert.ok(final[0]!.verdict.kind === 'final' && final[0]!.verdict.creditKey === `ETH:${hash.toLowerCase()}:token:2`);
      assert.ok(verdicts.every((v) => v.verdict.kind === 'final' || v.verdict.kind === 'mismatch'));
    });

    it('should fail a claim whose token, recipient or amount differs from the transfer at its identity, saying which', async () => {
      const [token, other] = [await deployToken(6), await deployToken(6)];
      const ours = address();
      const hash = await batch(token, [ours], [5n]);
      await mined(hash);
      const report = await evm.transfersOf(hash);
      const claim = { chain: 'ETH', txHash: hash, eventIndex: 1, token, amount: 5n, toAddress: ours } as const;
      assert.match((judgeClaim(report, { ...claim, token: other }) as { reason: string }).reason, /moves 0x[0-9a-fA-F]{40}, not/);
      assert.match((judgeClaim(report, { ...claim, token: 'native', eventIndex: 0 }) as { reason: string }).reason, /no native transfer at eventIndex 0/);
      assert.match((judgeClaim(report, { ...claim, toAddress: address() }) as { reason: string }).reason, /pays/);
      assert.match((judgeClaim(report, { ...claim, amount: 50n }) as { reason: string }).reason, /moves 5, not 50/);
    });

    it('should keep a matching claim confirming until final, and say not_found after a reorganisation (reverse the credit)', async () => {
      const token = await deployToken(6);
      const ours = address();
      const snapshot = await rpc('evm_snapshot');
      const hash = await batch(token, [ours], [7_000_000n]);
      await mined(hash);
      const claim = { chain: 'ETH', txHash: hash, eventIndex: 1, token, amount: 7_000_000n, toAddress: ours } as const;
      assert.equal(judgeClaim(await evm.transfersOf(hash), claim).kind, 'confirming');
      await rpc('anvil_mine', ['0x2']);
      assert.equal(judgeClaim(await evm.transfersOf(hash), claim).kind, 'final');
      await rpc('evm_revert', [snapshot]);
      assert.equal(judgeClaim(await evm.transfersOf(hash), claim).kind, 'not_found');
    });

    it('should name EVM transfers by their lower-cased hash, native and token apart', () => {
      const native = { eventIndex: 0, asset: { kind: 'native' } } as const;
      const log = { eventIndex: 0, asset: { kind: 'erc20', contract: '0x0', decimals: 6 } } as const;
      assert.equal(creditKey('ETH', '0xABcd', native), 'ETH:0xabcd:native:0');
      assert.notEqual(creditKey('ETH', '0xabcd', native), creditKey('ETH', '0xabcd', log));
    });
  });

  it('should refuse a finality of no confirmations and a malformed hash with VALIDATION_FAILED', async () => {
    assert.throws(
      () => createEvmAdapter({ rpcUrl: anvil.url, finality: { confirmations: 0 } }),
      (e) => isFleetError(e, 'VALIDATION_FAILED'),
    );
    await assert.rejects(evm.transfersOf('0x1234'), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });

  it('should answer UNAVAILABLE, retryable, when the node is down', async () => {
    const down = createEvmAdapter({ rpcUrl: 'http://127.0.0.1:1', requestTimeoutMs: 1000 });
    await assert.rejects(down.transfersOf(`0x${randomBytes(32).toString('hex')}`), (e) => isFleetError(e, 'UNAVAILABLE') && e.retryable);
  });
});
