// The development runtimes are declared twice: infra/dev-runtimes.json for the fleet runner and
// infra/compose/dev-runtimes.yml for containers. No Docker engine here: check that the two agree, that
// the wallet container is pointed at them, and that the pieces the containers run (the anvil runtime of
// packages/dev-runtimes, the probes of the health checks) really work.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createRequire } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@wallet-fleet/testing';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');
const requireFromMocha = createRequire(createRequire(import.meta.url).resolve('mocha/package.json'));
const yaml = requireFromMocha('js-yaml') as { load(s: string): unknown };

interface Runtime {
  name: string;
  command: string[];
  port: number;
  portEnv: string;
  provides: Record<string, string>;
  usedBy: string[];
}
interface ComposeService {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

const probe = (args: string[]) =>
  new Promise<number | null>((done) => {
    spawn(process.execPath, [join(repoRoot, 'scripts/probe.mjs'), ...args], { stdio: 'ignore' }).on('close', done);
  });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

describe('development runtimes: table, compose file and their tools', () => {
  const table = (JSON.parse(read('infra/dev-runtimes.json')) as { runtimes: Runtime[] }).runtimes;
  const main = yaml.load(read('docker-compose.yml')) as {
    include?: Array<{ path: string; project_directory?: string }>;
    services: Record<string, ComposeService>;
  };
  const dev = yaml.load(read('infra/compose/dev-runtimes.yml')) as { services: Record<string, ComposeService> };

  it('should declare the KMS emulator, the Solana runtime and anvil on their agreed ports for the wallet service', () => {
    const byName = Object.fromEntries(table.map((r) => [r.name, r]));
    assert.deepEqual(Object.fromEntries(table.map((r) => [r.name, [r.port, Object.keys(r.provides)]])), {
      'kms-emulator': [9011, ['KMS_ENDPOINT']],
      solana: [8899, ['SOLANA_RPC_URL']],
      anvil: [8545, ['EVM_RPC_URL']],
    });
    for (const r of table) assert.ok(r.usedBy.includes('wallet'), `${r.name} is for the wallet service`);
    assert.deepEqual(byName.anvil!.command, ['{node}', 'packages/dev-runtimes/dist/anvil-main.js'], 'anvil runs from packages/dev-runtimes');
    assert.deepEqual(
      byName.solana!.command,
      ['{node}', 'packages/dev-runtimes/dist/solana-runtime-main.js'],
      'the Solana runtime runs from packages/dev-runtimes',
    );
  });

  it('should include the runtimes compose file from docker-compose.yml with the repository as project directory', () => {
    assert.deepEqual(main.include, [{ path: 'infra/compose/dev-runtimes.yml', project_directory: '.' }]);
  });

  it('should run every runtime of the table in compose from the fleet image, reachable from other containers, published on loopback, with a probe health check', () => {
    for (const r of table) {
      const s = dev.services[r.name];
      assert.ok(s, `compose service ${r.name}`);
      assert.equal(s.build, '.', `${r.name} builds the Dockerfile`);
      assert.equal(s.image, 'wallet-fleet:local', `${r.name} uses the fleet image`);
      assert.deepEqual(s.ports, [`127.0.0.1:${r.port}:${r.port}`], `${r.name} ports`);
      assert.deepEqual(s.healthcheck?.test.slice(0, 3), ['CMD', 'node', 'scripts/probe.mjs'], `${r.name} health check`);
      assert.ok(s.healthcheck?.test.includes(String(r.port)), `${r.name} health check probes its port`);
      assert.equal(r.command[0], '{node}', `${r.name} runs on Node`);
      assert.deepEqual(s.command, ['node', ...r.command.slice(1)], `${r.name} command`);
      assert.equal(s.environment?.[r.portEnv], String(r.port), `${r.name} port variable`);
      assert.ok(
        Object.entries(s.environment ?? {}).some(([k, v]) => k.endsWith('_HOST') && v === '0.0.0.0'),
        `${r.name} listens on all interfaces`,
      );
    }
  });

  it('should point the wallet container at the runtimes by compose name and wait until they are healthy', () => {
    const wallet = main.services.wallet!;
    for (const r of table) {
      for (const [key, value] of Object.entries(r.provides)) {
        const target = wallet.environment?.[key];
        assert.ok(target, `wallet has ${key}`);
        const local = value.replaceAll('{port}', String(r.port)).replace('127.0.0.1', r.name);
        assert.equal(target, local, `${key} names the compose service ${r.name}`);
      }
      assert.equal(wallet.depends_on?.[r.name]?.condition, 'service_healthy', `wallet waits for ${r.name}`);
    }
  });

  it('should probe a JSON-RPC server for a method and an expected result (the runtimes’ health checks)', async () => {
    const server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const { method, id } = JSON.parse(body) as { method: string; id: number };
        const reply =
          method === 'getHealth' ? { jsonrpc: '2.0', id, result: 'ok' } : { jsonrpc: '2.0', id, error: { code: -32601, message: 'no such method' } };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const port = String((server.address() as AddressInfo).port);
    try {
      assert.equal(await probe(['jsonrpc', '127.0.0.1', port, 'getHealth', 'ok']), 0);
      assert.equal(await probe(['jsonrpc', '127.0.0.1', port, 'getHealth', 'behind']), 1);
      assert.equal(await probe(['jsonrpc', '127.0.0.1', port, 'eth_chainId']), 1);
      assert.equal(await probe(['tcp', '127.0.0.1', port]), 0);
    } finally {
      await new Promise<void>((done) => server.close(() => done()));
    }
    assert.equal(await probe(['tcp', '127.0.0.1', port]), 1, 'nothing listens any more');
  });

  it('should run anvil through the command of the table with chain id 31337 on its port variable and stop it on SIGTERM', async () => {
    const port = await freePort();
    const anvil = table.find((r) => r.name === 'anvil')!;
    const child = spawn(process.execPath, anvil.command.slice(1), { cwd: repoRoot, env: { ...process.env, [anvil.portEnv]: String(port) }, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => child.on('close', done));
    try {
      await waitFor(async () => (await probe(['jsonrpc', '127.0.0.1', String(port), 'eth_chainId', '0x7a69'])) === 0, { what: 'anvil answering' });
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
    assert.equal(await probe(['tcp', '127.0.0.1', String(port)]), 1, 'anvil is gone');
  });
});
