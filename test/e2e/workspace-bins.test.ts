// Commands that workspace packages declare in `bin`: pnpm links them at install, before any build, so
// each must be a committed file (a shim importing ../dist/…), never a file under dist/, or every fresh
// `pnpm install` warns "Failed to create bin" once per dependent.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@wallet-fleet/testing';
import { freePort } from './support/service-process.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Every workspace package folder, as pnpm-workspace.yaml lists them (`dir/*` or `dir`). */
function workspacePackages(): string[] {
  const yaml = readFileSync(join(repoRoot, 'pnpm-workspace.yaml'), 'utf8');
  const globs = [...yaml.split(/^\S.*$/m)[1]!.matchAll(/^ {2}- (\S+)$/gm)].map((m) => m[1]!);
  return globs
    .flatMap((g) =>
      g.endsWith('/*')
        ? readdirSync(join(repoRoot, g.slice(0, -2)), { withFileTypes: true })
            .filter((d) => d.isDirectory())
            .map((d) => join(g.slice(0, -2), d.name))
        : [g],
    )
    .filter((dir) => existsSync(join(repoRoot, dir, 'package.json')));
}

describe('workspace package bins', () => {
  it('should point every bin of every workspace package at a file outside dist/ that exists before a build', () => {
    const bins: string[] = [];
    for (const dir of workspacePackages()) {
      const pkg = JSON.parse(readFileSync(join(repoRoot, dir, 'package.json'), 'utf8')) as { name: string; bin?: string | Record<string, string> };
      if (pkg.bin === undefined) continue;
      const targets = typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : pkg.bin;
      for (const [command, target] of Object.entries(targets)) {
        const path = join(dir, target);
        bins.push(command);
        assert.ok(
          !/(^|\/)dist\//.test(path.replace(/\\/g, '/')),
          `${pkg.name} bin ${command} points into dist/ (${target}): use a committed shim that imports it`,
        );
        assert.ok(existsSync(join(repoRoot, path)), `${pkg.name} bin ${command}: ${target} does not exist`);
      }
    }
    assert.ok(bins.includes('kms-emulator'), `the KMS emulator's command is among them: ${bins.join(', ')}`);
  });

  it('should run the KMS emulator through its linked kms-emulator command', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'kms-bin-'));
    const child = spawn(join(repoRoot, 'test', 'node_modules', '.bin', 'kms-emulator'), [], {
      env: { ...process.env, KMS_EMULATOR_PORT: String(port), KMS_EMULATOR_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((done) => child.on('close', done));
    try {
      await waitFor(() => out.includes('kms emulator listening'), { what: 'the emulator to listen' });
      assert.match(out, new RegExp(`"endpoint":"127\\.0\\.0\\.1:${port}"`));
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
