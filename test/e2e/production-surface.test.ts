// What a service's production install (`pnpm install --prod`, `pnpm deploy --prod`) brings with it,
// read from the package.json files and the lockfile (no network, no install): the development
// runtimes, the KMS emulator and the test support must never be part of it. And what a service
// started with NODE_ENV=production (the image's) does with a development runtime: it refuses to start.
import assert from 'node:assert/strict';
import { runNode } from '@wallet-fleet/testing';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const requireFromMocha = createRequire(createRequire(import.meta.url).resolve('mocha/package.json'));
const yaml = requireFromMocha('js-yaml') as { load(s: string): unknown };

/** Never in production: local chain runtimes, the KMS emulator (keys unencrypted), test support. */
const FORBIDDEN = [/^litesvm/, /^@foundry-rs\//, /^testcontainers$/, /^@testcontainers\//, /^@wallet-fleet\/(dev-runtimes|kms-emulator|testing)$/];

type Deps = Record<string, { specifier: string; version: string }>;
interface Lockfile {
  importers: Record<string, { dependencies?: Deps; optionalDependencies?: Deps; devDependencies?: Deps }>;
  snapshots: Record<string, { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }>;
}
const lock = yaml.load(readFileSync(join(repoRoot, 'pnpm-lock.yaml'), 'utf8')) as Lockfile;

/** Every package a production install of `importer` (a workspace path) brings, by name, with the path that brought it. */
function productionClosure(importer: string): Map<string, string> {
  const seen = new Map<string, string>();
  const visitedSnapshots = new Set<string>();
  const visitImporter = (path: string, via: string): void => {
    const entry = lock.importers[path];
    assert.ok(entry, `the lockfile has the importer ${path}`);
    for (const [name, { version }] of Object.entries({ ...entry.dependencies, ...entry.optionalDependencies })) visit(name, version, path, `${via} > ${name}`);
  };
  const visit = (name: string, version: string, from: string, via: string): void => {
    if (!seen.has(name)) seen.set(name, via);
    if (version.startsWith('link:')) {
      const target = posix.normalize(posix.join(from, version.slice('link:'.length)));
      if (!visitedSnapshots.has(`link:${target}`)) {
        visitedSnapshots.add(`link:${target}`);
        visitImporter(target, via);
      }
      return;
    }
    // A version starts with a digit; an alias names the real package (`string-width@4.2.3`).
    const key = /^\d/.test(version) ? `${name}@${version}` : version;
    if (visitedSnapshots.has(key)) return;
    visitedSnapshots.add(key);
    const snap = lock.snapshots[key];
    assert.ok(snap, `the lockfile has the snapshot ${key}`);
    for (const [dep, v] of Object.entries({ ...snap.dependencies, ...snap.optionalDependencies })) visit(dep, v, from, `${via} > ${dep}`);
  };
  visitImporter(importer, importer);
  return seen;
}

const services = readdirSync(join(repoRoot, 'services')).filter((s) => existsSync(join(repoRoot, 'services', s, 'package.json')));

describe('production surface of the services', () => {
  it('should find the services and read a graph that does reach the runtimes where they are depended on', () => {
    assert.ok(services.includes('wallet') && services.includes('webhooks'), `services: ${services.join(', ')}`);
    // The check below is only worth something if the walk finds a forbidden package where there is one.
    const devRuntimes = productionClosure('packages/dev-runtimes');
    assert.ok(devRuntimes.has('litesvm') && devRuntimes.has('@foundry-rs/anvil'), 'the dev runtimes bring litesvm and anvil');
  });

  it('should keep testcontainers and the KMS emulator out of the workspace-wide production install (the container image) but for the emulator itself', () => {
    // `pnpm install --prod` at the root installs every workspace package's dependencies: the test
    // support and the cross-service tests declare theirs as devDependencies.
    for (const importer of ['packages/testing', 'test']) {
      const bad = [...productionClosure(importer)].filter(([name]) => FORBIDDEN.some((f) => f.test(name))).map(([, via]) => via);
      assert.deepEqual(bad, [], `${importer} brings into the image: ${bad.join('; ')}`);
    }
  });

  for (const service of services) {
    it(`should keep the development runtimes, the KMS emulator and the test support out of the production install of ${service}`, () => {
      const pkg = JSON.parse(readFileSync(join(repoRoot, 'services', service, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      const importer = lock.importers[`services/${service}`];
      assert.deepEqual(
        Object.keys(importer?.dependencies ?? {}).sort(),
        Object.keys(pkg.dependencies ?? {}).sort(),
        'the lockfile agrees with package.json (pnpm install)',
      );
      const closure = productionClosure(`services/${service}`);
      const bad = [...closure].filter(([name]) => FORBIDDEN.some((f) => f.test(name))).map(([, via]) => via);
      assert.deepEqual(bad, [], `not for production, yet brought by: ${bad.join('; ')}`);
    });
  }
});

/** `node services/<name>/dist/main.js` with exactly `env` (and PATH): its exit code and output. */
const startOnly = (name: string, env: Record<string, string>) =>
  runNode([`services/${name}/dist/main.js`], { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...env } });

describe('development runtimes refused in production', () => {
  // Nothing listens on these: a service that got past its configuration would fail later, and differently.
  const production = {
    NODE_ENV: 'production',
    AMQP_URL: 'amqp://wallet:x@127.0.0.1:1',
    DATABASE_URL: 'postgres://wallet@127.0.0.1:1/fleet',
    REDIS_URL: 'redis://127.0.0.1:1',
    SOLANA_RPC_URL: 'https://solana.example',
    EVM_RPC_URL: 'https://evm.example',
    APTOS_NODE_URL: 'https://aptos.example/v1',
  };
  const refused = async (name: string, env: Record<string, string>, line: RegExp) => {
    const r = await startOnly(name, { ...production, ...env });
    assert.equal(r.code, 78, `${name} exits with EX_CONFIG: ${r.stderr}`);
    assert.equal(r.stdout, '', 'nothing started, nothing logged');
    const lines = r.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0]!, line);
  };

  it('should refuse to start the services that use KMS (wallet, audit) with the KMS emulator endpoint', async () => {
    for (const name of ['wallet', 'audit']) {
      await refused(
        name,
        { KMS_ENDPOINT: '127.0.0.1:9011' },
        new RegExp(`^${name}: invalid configuration: KMS_ENDPOINT: the KMS emulator \\(.*\\) is for development only: refused with NODE_ENV=production$`),
      );
    }
  });

  it('should refuse to start the services that use KMS (wallet, audit) with an empty KMS_ENDPOINT, rather than take the emulator', async () => {
    for (const name of ['wallet', 'audit']) {
      await refused(
        name,
        { KMS_ENDPOINT: '' },
        new RegExp(
          `^${name}: invalid configuration: KMS_ENDPOINT: required: cloudkms\\.googleapis\\.com \\(Google Cloud KMS\\) or host:port of the KMS emulator$`,
        ),
      );
    }
  });

  it("should refuse to start the webhooks service with the fleet runner's development secret", async () => {
    const devSecret = `whsec_${Buffer.concat([Buffer.from('wallet-fleet-development'), Buffer.alloc(32, 9)]).toString('base64')}`;
    await refused(
      'webhooks',
      { WEBHOOK_SECRETS: devSecret },
      /^webhooks: invalid configuration: WEBHOOK_SECRETS: the fleet runner's development webhook secret is for development only: refused with NODE_ENV=production$/,
    );
  });

  it('should refuse development mode itself, and the local chains, in every service', async () => {
    await refused(
      'wallet',
      { KMS_ENDPOINT: 'cloudkms.googleapis.com', SOLANA_RPC_URL: 'http://127.0.0.1:8899', FLEET_DEV_MODE: 'true' },
      /^wallet: invalid configuration: FLEET_DEV_MODE: development mode is refused with NODE_ENV=production; SOLANA_RPC_URL: a chain RPC over plain http:\/\/ .* refused with NODE_ENV=production$/,
    );
    for (const name of ['audit', 'provisioning', 'reconciliation']) {
      await refused(
        name,
        // The audit service signs checkpoints with Cloud KMS: given, so that only development mode is refused.
        { FLEET_DEV_MODE: 'true', ...(name === 'audit' ? { KMS_ENDPOINT: 'cloudkms.googleapis.com' } : {}) },
        new RegExp(`^${name}: invalid configuration: FLEET_DEV_MODE: development mode is refused with NODE_ENV=production$`),
      );
    }
  });
});
