// scripts/send-deposit.mjs against a real webhooks service (intake role, its own vhost and schema): it
// signs with WEBHOOK_SECRETS, the variable the service reads, so a wrong secret is refused.
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode } from '@wallet-fleet/testing';
import { type Harness, newSecret, startHarness } from '../../services/webhooks/test/support.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function send(body: string, env: Record<string, string | undefined>) {
  const childEnv: Record<string, string | undefined> = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  return runNode([join(repoRoot, 'scripts/send-deposit.mjs'), body], { env: childEnv });
}

describe('send-deposit CLI (scripts/send-deposit.mjs)', function () {
  this.timeout(30_000);
  let h: Harness;
  // A well-formed hash (0x + 64 hex) that no chain has seen: the intake refuses malformed ones with 400.
  const deposit = (txHash: string) => JSON.stringify({ chain: 'ETH', txHash: txHash.padEnd(66, '0'), token: 'native', amount: '1000', toAddress: 'a1b2c3' });

  before(async () => {
    h = await startHarness({ WEBHOOKS_ROLES: 'intake' });
  });
  after(async () => {
    await h?.stop();
  });

  it('should sign with the first secret of WEBHOOK_SECRETS and get 200 when it is the service secret', async () => {
    const r = await send(deposit('0xaa01'), { WEBHOOKS_URL: h.base, WEBHOOK_SECRETS: `${h.secret},${newSecret()}`, WEBHOOK_SECRET: undefined });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^200 \{"status":"accepted"/);
  });

  it('should get 401 and exit 1 with a wrong secret in WEBHOOK_SECRETS', async () => {
    const r = await send(deposit('0xaa02'), { WEBHOOKS_URL: h.base, WEBHOOK_SECRETS: newSecret(), WEBHOOK_SECRET: undefined });
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^401 /);
  });

  it('should refuse the old WEBHOOK_SECRET name rather than sign with another secret', async () => {
    const r = await send(deposit('0xaa03'), { WEBHOOKS_URL: h.base, WEBHOOK_SECRETS: undefined, WEBHOOK_SECRET: newSecret() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /WEBHOOK_SECRET is not read; set WEBHOOK_SECRETS/);
    assert.equal(r.stdout, '');
  });

  it('should refuse a secret the service would refuse, naming the format', async () => {
    const r = await send(deposit('0xaa04'), { WEBHOOKS_URL: h.base, WEBHOOK_SECRETS: 'whsec_c2hvcnQ=', WEBHOOK_SECRET: undefined });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /WEBHOOK_SECRETS must be comma-separated secrets, each whsec_ followed by base64 of at least 16 bytes/);
  });
});
