// A provisioning process killed with SIGKILL in the middle of a burst of approvals (jobs in
// flight, rows half-written, outbox rows unpublished) loses nothing and duplicates nothing: after
// a restart every user ends with exactly one wallet per chain and one completed event.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { createSchemaName, createFleetVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import { caller, startWalletService, type WalletService } from '../../services/wallet/test/support.js';
import { type ServiceProcess, startService } from './support/service-process.js';

describe('provisioning process killed mid-burst', function () {
  this.timeout(120_000);
  let vhost: TestVhost;
  let walletSchema: TestSchema;
  let provSchema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let wallet: WalletService | undefined;
  let prov: ServiceProcess | undefined;
  let client: Broker | undefined;
  let events: amqp.ChannelModel | undefined;

  before(async () => {
    vhost = await createFleetVhost('prov-e2e');
    walletSchema = await createSchemaName('wallet');
    provSchema = await createSchemaName('prov');
    kms = await startKmsEmulator({ port: 0 });
  });

  after(async () => {
    await client?.stop();
    if (prov) {
      prov.kill('SIGKILL');
      await prov.exited;
    }
    await wallet?.stop();
    await events?.close();
    await kms?.stop();
    await vhost?.drop();
    await walletSchema?.drop();
    await provSchema?.drop();
  });

  it('should leave exactly one wallet per chain per user after a kill -9 and a restart', async () => {
    wallet = await startWalletService(vhost, walletSchema, { KMS_ENDPOINT: kms.endpoint });
    const env = {
      AMQP_URL: vhost.as('provisioning'),
      ...provSchema.env,
      LOG_LEVEL: 'warn',
      PROVISIONING_RETRY_INITIAL_DELAY_MS: '50',
      PROVISIONING_RETRY_MAX_DELAY_MS: '500',
      PROVISIONING_STUCK_AFTER_MS: '2000',
      PROVISIONING_SWEEP_INTERVAL_MS: '500',
      PROVISIONING_BREAKER_WAIT_MS: '100',
      PROVISIONING_BREAKER_RESET_MS: '200',
    };
    prov = await startService('provisioning', env);

    events = await amqp.connect(vhost.url);
    const ch = await events.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'wallet.events', 'wallet.created');
    await ch.bindQueue(q.queue, 'wallet.events', 'wallet.provisioning.completed');
    const created: string[] = [];
    const completed: string[] = [];
    await ch.consume(
      q.queue,
      (m) => {
        if (!m) return;
        const body = JSON.parse(m.content.toString());
        (m.fields.routingKey === 'wallet.created' ? created : completed).push(body.userId);
      },
      { noAck: true },
    );

    // The product's backend: approves KYC, reads status and wallets.
    const rpc = await caller(vhost, 'backend');
    client = rpc;
    const users = Array.from({ length: 30 }, () => `u-${randomUUID()}`);
    // Every approval twice: duplicates in the burst as well.
    await Promise.all(users.flatMap((userId) => [rpc.publishEvent('kyc.approved', { userId }), rpc.publishEvent('kyc.approved', { userId })]));

    await waitFor(() => created.length >= 10, { timeoutMs: 30_000, what: 'the burst under way' });
    prov.kill('SIGKILL');
    assert.equal(await prov.exited, 'SIGKILL');
    assert.ok(created.length < users.length * 3, 'killed before the burst was done');

    prov = await startService('provisioning', env);
    for (const userId of users) {
      await waitFor(
        async () => {
          const s = await rpc.request('wallet.provisioning.status', { userId });
          return s.chains.length === 3 && s.chains.every((c) => c.status === 'READY');
        },
        { timeoutMs: 60_000, what: `every chain of ${userId} READY` },
      );
      const list = await rpc.request('wallet.management.list', { userId });
      assert.deepEqual(list.items.map((w) => w.chain).sort(), ['APTOS', 'ETH', 'SOL'], userId);
    }
    // At least once on the wire (an outbox row published just before the kill is published again,
    // with the same messageId): one completed event per user, counted by user.
    await waitFor(() => new Set(completed).size === users.length, { timeoutMs: 30_000, what: 'a completed event per user' });
    await waitFor(() => created.length >= users.length * 3, { what: 'every wallet.created event' });
    assert.equal(created.length, users.length * 3);
  });
});
