import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '@wallet-fleet/service-kit';
import { waitFor } from '@wallet-fleet/testing';
import { createWebhooksService } from '../src/app.js';
import { loadWebhooksConfig } from '../src/config.js';
import { deliver, newSecret, type Harness, silent, startHarness } from './support.js';

describe('webhooks roles: intake and processing in separate processes', function () {
  this.timeout(60_000);
  let h: Harness;
  let worker: ReturnType<typeof createWebhooksService> | undefined;

  before(async () => {
    h = await startHarness({ WEBHOOKS_ROLES: 'intake' });
  });
  after(async () => {
    await worker?.stop();
    await h?.stop();
  });

  it('should accept deliveries on an intake-only process and leave them queued until a processing process runs', async () => {
    const body = {
      chain: 'ETH',
      txHash: `0x${randomBytes(32).toString('hex')}`,
      token: 'native',
      amount: '5',
      toAddress: `0x${randomBytes(20).toString('hex')}`,
    };
    const res = await deliver(h, { body });
    assert.equal(res.status, 200);
    const ch = await h.events.createChannel();
    await waitFor(async () => (await ch.checkQueue('webhooks.deposits')).messageCount === 1, { what: 'the job queued, not consumed' });
    await ch.close();
    assert.equal((await h.db.query('SELECT status FROM deposits WHERE deposit_id = $1', [res.body.jobId])).rows[0].status, 'pending');

    // No secret: a processing process verifies no signatures.
    worker = createWebhooksService(
      loadWebhooksConfig({
        FLEET_DEV_MODE: 'true',
        AMQP_URL: h.vhost.as('webhooks'),
        ...h.schema.env,
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        WEBHOOKS_ROLES: 'processing',
      }),
      silent,
    );
    await worker.start();
    // The address is no wallet of ours: the processing process rejects it (and dead-letters the job).
    await waitFor(async () => (await h.db.query('SELECT status FROM deposits WHERE deposit_id = $1', [res.body.jobId])).rows[0].status === 'rejected', {
      what: 'the job processed by the other process',
    });
    const post = await fetch(`http://127.0.0.1:${worker.port()}/webhooks/deposits`, { method: 'POST', body: '{}' });
    assert.equal(post.status, 404, 'a processing process serves no intake');
    assert.equal((await fetch(`http://127.0.0.1:${worker.port()}/ready`)).status, 200);
  });

  it('should require secrets only where deliveries are verified, and refuse unknown roles', () => {
    assert.throws(
      () => loadWebhooksConfig({ FLEET_DEV_MODE: 'true', WEBHOOKS_ROLES: 'intake' }),
      (e: unknown) => e instanceof ConfigError && e.problems[0]!.variable === 'WEBHOOK_SECRETS',
    );
    assert.deepEqual([...loadWebhooksConfig({ FLEET_DEV_MODE: 'true', WEBHOOKS_ROLES: 'processing' }).WEBHOOKS_ROLES], ['processing']);
    assert.throws(
      () => loadWebhooksConfig({ FLEET_DEV_MODE: 'true', WEBHOOKS_ROLES: 'intake,mining' }),
      (e: unknown) => e instanceof ConfigError && e.problems[0]!.variable === 'WEBHOOKS_ROLES',
    );
  });

  it('should read named senders, finality and the token allow-list, and name a malformed one', () => {
    const a = newSecret();
    const b = newSecret();
    const c = loadWebhooksConfig({
      FLEET_DEV_MODE: 'true',
      WEBHOOK_SECRETS: `acme=${a},${b}`,
      EVM_FINALITY: '12',
      DEPOSIT_TOKEN_ALLOWLIST: 'ETH:0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48,SOL:EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v',
    });
    assert.deepEqual(c.WEBHOOK_SECRETS, [
      { sender: 'acme', secret: a },
      { sender: 'default', secret: b },
    ]);
    assert.deepEqual(c.EVM_FINALITY, { confirmations: 12 });
    assert.deepEqual([...c.DEPOSIT_TOKEN_ALLOWLIST], ['ETH:0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48', 'SOL:EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v']);
    assert.equal(loadWebhooksConfig({ FLEET_DEV_MODE: 'true', WEBHOOKS_ROLES: 'processing' }).EVM_FINALITY, 'finalized');
    const bad = (env: Record<string, string>) => {
      try {
        loadWebhooksConfig({ FLEET_DEV_MODE: 'true', WEBHOOK_SECRETS: a, ...env });
      } catch (e) {
        return e instanceof ConfigError ? e.problems.map((p) => p.variable) : [];
      }
      return [];
    };
    assert.deepEqual(bad({ WEBHOOK_SECRETS: `Acme!=${a}` }), ['WEBHOOK_SECRETS']);
    assert.deepEqual(bad({ WEBHOOK_SECRETS: 'acme=whsec_c2hvcnQ=' }), ['WEBHOOK_SECRETS']);
    assert.deepEqual(bad({ EVM_FINALITY: 'latest' }), ['EVM_FINALITY']);
    assert.deepEqual(bad({ DEPOSIT_TOKEN_ALLOWLIST: 'ETH:usdc' }), ['DEPOSIT_TOKEN_ALLOWLIST']);
  });
});
