import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isFleetError } from '@wallet-fleet/contracts';
import { waitFor } from '@wallet-fleet/testing';
import { type Anvil, startAnvil } from '../src/index.js';

// anvil's first development key: public, but it must still not be printed by the runtime.
const DEV_KEY = 'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

async function chainId(url: string): Promise<string | undefined> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    signal: AbortSignal.timeout(1000),
  });
  return ((await res.json()) as { result?: string }).result;
}

describe('anvil runtime', () => {
  let anvil: Anvil;

  before(async () => {
    anvil = await startAnvil({ port: 0 });
  });
  after(async () => {
    await anvil?.stop();
  });

  it('should start anvil on a free port answering chain id 31337', async () => {
    assert.equal(await chainId(anvil.url), '0x7a69');
  });

  it('should fail to start anvil on a port that is taken with UNAVAILABLE', async () => {
    await assert.rejects(startAnvil({ port: anvil.port }), (e) => isFleetError(e, 'UNAVAILABLE'));
  });

  it('should run anvil as a process on EVM_RUNTIME_PORT without printing its development keys, and stop it on SIGTERM', async () => {
    const main = fileURLToPath(new URL('../src/anvil-main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main], { env: { ...process.env, EVM_RUNTIME_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((r) => child.once('exit', r));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let url: string | undefined;
    try {
      url = await waitFor(() => /"url":"([^"]+)"/.exec(out)?.[1], { timeoutMs: 20000, what: 'the listening line' });
      assert.equal(await chainId(url), '0x7a69');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    assert.equal(child.exitCode, 0);
    assert.ok(!out.toLowerCase().includes(DEV_KEY), 'the banner with the development keys is not printed');
    // The node went with it.
    await assert.rejects(chainId(url));
  });
});
