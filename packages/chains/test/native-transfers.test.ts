// What a transaction paid an address, read back from the chain: the lookup deposit validation uses.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Connection, Keypair, SystemProgram, Transaction } from '@solana/web3.js';
import bs58 from 'bs58';
import { createPublicClient, createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { isFleetError } from '@wallet-fleet/contracts';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { createEvmAdapter, createSolanaAdapter, type SolanaAdapter, type EvmAdapter } from '../src/index.js';

// anvil's first dev account (public, well-known test key).
const DEV_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('native transfers of a transaction', () => {
  describe('Solana', () => {
    let runtime: SolanaRuntime;
    let solana: SolanaAdapter;
    let conn: Connection;

    before(async () => {
      runtime = await startSolanaRuntime({ port: 0, slotMs: 20 });
      solana = createSolanaAdapter({ rpcUrl: runtime.url });
      conn = new Connection(runtime.url, 'confirmed');
    });
    after(async () => {
      await runtime?.stop();
    });

    async function send(lamports: number, to = Keypair.generate().publicKey, skipPreflight = false) {
      const from = Keypair.generate();
      runtime.airdrop(from.publicKey.toBase58(), 1_000_000_000n);
      const tx = new Transaction({ feePayer: from.publicKey, ...(await conn.getLatestBlockhash()) });
      tx.add(SystemProgram.transfer({ fromPubkey: from.publicKey, toPubkey: to, lamports }));
      tx.sign(from);
      return { signature: await conn.sendRawTransaction(tx.serialize(), { skipPreflight }), from: from.publicKey.toBase58(), to: to.toBase58() };
    }

    it('should list the lamports a confirmed transfer paid the address, at its account position, with slot and finality', async () => {
      const { signature, to } = await send(1_234_567);
      const found = await solana.nativeTransfers(signature, to);
      assert.equal(found.status, 'landed');
      if (found.status !== 'landed') return;
      assert.deepEqual(found.transfers, [{ to, amount: 1_234_567n, position: { kind: 'solana-account', accountIndex: 1 } }]);
      assert.equal(found.finality, 'finalized', 'the local runtime finalizes at once');
      const tx = await conn.getTransaction(signature, { maxSupportedTransactionVersion: 0 });
      assert.equal(found.block, BigInt(tx!.slot));
    });

    it('should list nothing for an address the transaction does not pay (the payer, or a stranger)', async () => {
      const { signature, from } = await send(1_000_000);
      const toPayer = await solana.nativeTransfers(signature, from);
      assert.deepEqual(toPayer.status === 'landed' && toPayer.transfers, []);
      const toStranger = await solana.nativeTransfers(signature, Keypair.generate().publicKey.toBase58());
      assert.deepEqual(toStranger.status === 'landed' && toStranger.transfers, []);
    });

    it('should say failed for a transaction that landed with an error', async () => {
      const { signature, to } = await send(5_000_000_000, undefined, true);
      assert.equal((await solana.nativeTransfers(signature, to)).status, 'failed');
    });

    it('should say not_found for a signature the node never saw', async () => {
      assert.deepEqual(await solana.nativeTransfers(bs58.encode(randomBytes(64)), Keypair.generate().publicKey.toBase58()), { status: 'not_found' });
    });

    it('should refuse something that is not a signature or not an address with VALIDATION_FAILED', async () => {
      await assert.rejects(solana.nativeTransfers(`0x${'ab'.repeat(32)}`, Keypair.generate().publicKey.toBase58()), (e) =>
        isFleetError(e, 'VALIDATION_FAILED'),
      );
      await assert.rejects(solana.nativeTransfers(bs58.encode(randomBytes(64)), 'nope'), (e) => isFleetError(e, 'VALIDATION_FAILED'));
    });

    it('should answer UNAVAILABLE, retryable, when the node is down', async () => {
      const down = createSolanaAdapter({ rpcUrl: 'http://127.0.0.1:1', requestTimeoutMs: 1000 });
      await assert.rejects(
        down.nativeTransfers(bs58.encode(randomBytes(64)), Keypair.generate().publicKey.toBase58()),
        (e) => isFleetError(e, 'UNAVAILABLE') && e.retryable,
      );
    });

    it('should answer UNAVAILABLE, never a verdict on the status alone, when the node does not serve getTransaction', async () => {
      // A node that knows the signature as confirmed but has no getTransaction (some providers).
      const server: Server = createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          const { id, method } = JSON.parse(body) as { id: number; method: string };
          const reply =
            method === 'getSignatureStatuses'
              ? {
                  jsonrpc: '2.0',
                  id,
                  result: { context: { slot: 5 }, value: [{ slot: 5, confirmations: 0, err: null, status: { Ok: null }, confirmationStatus: 'confirmed' }] },
                }
              : { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } };
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
        });
      });
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      try {
        const partial = createSolanaAdapter({ rpcUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
        await assert.rejects(
          partial.nativeTransfers(bs58.encode(randomBytes(64)), Keypair.generate().publicKey.toBase58()),
          (e) => isFleetError(e, 'UNAVAILABLE') && e.retryable && /getTransaction/.test(e.message),
        );
      } finally {
        server.closeAllConnections();
        await new Promise<void>((done) => server.close(() => done()));
      }
    });
  });

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

    async function send(tx: { to: Hex; value?: bigint; data?: Hex }) {
      const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain: foundry, transport: http(anvil.url) });
      const hash = await dev.sendTransaction(tx);
      await createPublicClient({ chain: foundry, transport: http(anvil.url) }).waitForTransactionReceipt({ hash, pollingInterval: 20 });
      return hash;
    }
    const mine = (blocks: number) =>
      fetch(anvil.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'anvil_mine', params: [`0x${blocks.toString(16)}`] }),
      });

    it('should list the wei a mined transaction paid the address as its value, with the confirmations growing with each block', async () => {
      const to = `0x${randomBytes(20).toString('hex')}` as Hex;
      const hash = await send({ to, value: 1000n });
      const found = await evm.nativeTransfers(hash, to.toLowerCase());
      assert.equal(found.status, 'landed');
      if (found.status !== 'landed') return;
      assert.equal(found.transfers.length, 1);
      assert.equal(found.transfers[0]!.to.toLowerCase(), to.toLowerCase());
      assert.equal(found.transfers[0]!.amount, 1000n);
      assert.deepEqual(found.transfers[0]!.position, { kind: 'evm-value' });
      assert.equal(found.confirmations, 1n);
      await mine(2);
      const later = await evm.nativeTransfers(hash, to);
      assert.equal(later.status === 'landed' && later.confirmations, 3n);
    });

    it('should list nothing for an address the transaction does not pay', async () => {
      const hash = await send({ to: `0x${randomBytes(20).toString('hex')}` as Hex, value: 5n });
      const found = await evm.nativeTransfers(hash, `0x${randomBytes(20).toString('hex')}`);
      assert.deepEqual(found.status === 'landed' && found.transfers, []);
    });

    it('should say failed for a reverted transaction', async () => {
      // Init code that reverts at once (PUSH1 0 PUSH1 0 REVERT): a contract creation that fails.
      const dev = createWalletClient({ account: privateKeyToAccount(DEV_KEY), chain: foundry, transport: http(anvil.url) });
      const hash = await dev.sendTransaction({ data: '0x60006000fd', gas: 100_000n } as never);
      await createPublicClient({ chain: foundry, transport: http(anvil.url) }).waitForTransactionReceipt({ hash, pollingInterval: 20 });
      assert.equal((await evm.nativeTransfers(hash, `0x${randomBytes(20).toString('hex')}`)).status, 'failed');
    });

    it('should say not_found for a hash the node never saw', async () => {
      assert.deepEqual(await evm.nativeTransfers(`0x${randomBytes(32).toString('hex')}`, `0x${randomBytes(20).toString('hex')}`), { status: 'not_found' });
    });

    it('should refuse something that is not a transaction hash or not an address with VALIDATION_FAILED', async () => {
      await assert.rejects(evm.nativeTransfers('0x1234', `0x${randomBytes(20).toString('hex')}`), (e) => isFleetError(e, 'VALIDATION_FAILED'));
      await assert.rejects(evm.nativeTransfers(`0x${randomBytes(32).toString('hex')}`, 'nope'), (e) => isFleetError(e, 'VALIDATION_FAILED'));
    });

    it('should answer UNAVAILABLE, retryable, when the node is down', async () => {
      const down = createEvmAdapter({ rpcUrl: 'http://127.0.0.1:1', requestTimeoutMs: 1000 });
      await assert.rejects(
        down.nativeTransfers(`0x${randomBytes(32).toString('hex')}`, `0x${randomBytes(20).toString('hex')}`),
        (e) => isFleetError(e, 'UNAVAILABLE') && e.retryable,
      );
    });
  });
});
