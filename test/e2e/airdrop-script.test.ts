// scripts/airdrop.mjs, the faucet of the README's "Try it", against a real local Solana runtime.
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Keypair } from '@solana/web3.js';
import { createSolanaAdapter } from '@wallet-fleet/chains';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { runNode } from '@wallet-fleet/testing';

const script = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'scripts/airdrop.mjs');

const run = (args: string[], env: Record<string, string>) => runNode([script, ...args], { env: { ...process.env, ...env } });

describe('scripts/airdrop.mjs', () => {
  let runtime: SolanaRuntime;

  before(async () => {
    runtime = await startSolanaRuntime({ port: 0 });
  });
  after(async () => {
    await runtime?.stop();
  });

  it('should fund an address and print the signature and the new balance', async () => {
    const address = Keypair.generate().publicKey.toBase58();
    const { code, stdout } = await run([address, '2000000000'], { SOLANA_RPC_URL: runtime.url });
    assert.equal(code, 0);
    const out = JSON.parse(stdout) as { signature: string; balance: string };
    assert.equal(out.balance, '2000000000');
    assert.equal(await createSolanaAdapter({ rpcUrl: runtime.url }).getBalance(address), 2_000_000_000n);
    const found = await createSolanaAdapter({ rpcUrl: runtime.url }).nativeTransfers(out.signature, address);
    assert.equal(found.status === 'landed' && found.transfers[0]?.amount, 2_000_000_000n, 'the signature is the airdrop');
  });

  it('should exit 2 with the usage on a bad address or amount', async () => {
    for (const args of [[], ['not-an-address', '1'], [Keypair.generate().publicKey.toBase58(), '-5']]) {
      const { code, stderr } = await run(args, { SOLANA_RPC_URL: runtime.url });
      assert.equal(code, 2, JSON.stringify(args));
      assert.match(stderr, /usage/);
    }
  });

  it('should exit 1 naming the endpoint when no node answers', async () => {
    const { code, stderr } = await run([Keypair.generate().publicKey.toBase58(), '1000'], { SOLANA_RPC_URL: 'http://127.0.0.1:1' });
    assert.equal(code, 1);
    assert.match(stderr, /127\.0\.0\.1:1: is the fleet running\?/);
  });
});
