import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'mocha';
import { waitFor } from '@wallet-fleet/testing';

const fixture = fileURLToPath(new URL('./fixtures/run-main.ts', import.meta.url));

function runMain(env: Record<string, string>) {
  // Only what the fixture needs: a variable of the test's own environment must not decide its config.
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { out, exited, kill: (s: NodeJS.Signals) => child.kill(s) };
}

describe('runServiceMain', () => {
  it('should exit 78 on a bad configuration, naming every bad variable on stderr and creating nothing', async () => {
    const run = runMain({ HTTP_PORT: 'eighty', FIXTURE_COLOUR: 'green' });
    assert.equal(await run.exited, 78);
    assert.equal(run.out.stderr, 'fixture: invalid configuration: HTTP_PORT: expected an integer; FIXTURE_COLOUR: expected one of red, blue\n');
    assert.equal(run.out.stdout, '');
  });

  it('should create the service from the loaded configuration, log at LOG_LEVEL, and stop it on SIGTERM', async () => {
    const run = runMain({ FIXTURE_COLOUR: 'blue', LOG_LEVEL: 'debug' });
    await waitFor(() => run.out.stdout.includes('"msg":"service running"'), { what: 'service running' });
    const lines = run.out.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l.msg === 'fixture configured' && l.colour === 'blue' && l.service === 'fixture'));
    assert.ok(
      lines.some((l) => l.level === 'debug'),
      'LOG_LEVEL=debug lets debug lines through',
    );
    run.kill('SIGTERM');
    assert.equal(await run.exited, 0);
  });
});
