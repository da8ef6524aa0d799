// Deposits through the whole fleet: wallets made by the wallet service (keys in the KMS emulator),
// money moved on the local Solana runtime (a KMS-signed transfer between two fleet wallets) and on
// anvil, the indexer's webhook posted to the webhooks service, and the ledger credited once to the
// right wallet, which the webhooks service learnt of from the wallet service's events alone.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import { type Broker, createBroker, defineTopology } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, createFleetVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { createWalletClient, type Hex, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { createReconciliationService } from '../../services/reconciliation/src/app.js';
import { loadReconciliationConfig } from '../../services/reconciliation/src/config.js';
import { createWalletService } from '../../services/wallet/src/app.js';
import { loadWalletConfig } from '../../services/wallet/src/config.js';
import { createWebhooksService } from '../../services/webhooks/src/app.js';
import { loadWebhooksConfig } from '../../services/webhooks/src/config.js';
import { deliver, newSecret } from '../../services/webhooks/test/support.js';

const silent = createLogger({ service: 'test', level: 'silent' });
// anvil's first dev account (public, funded with 10,000 ETH on every anvil).
const ANVIL_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';

describe('deposits across the fleet (wallet, webhooks, reconciliation)', function () {
  this.timeout(120_000);
  let vhost: TestVhost;
  const schemas: TestSchema[] = [];
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let solana: SolanaRuntime;
  let anvil: Anvil;
  let wallet: ReturnType<typeof createWalletService>;
  let webhooks: ReturnType<typeof createWebhooksService>;
  let reconciliation: ReturnType<typeof createReconciliationService>;
  let rpc: Broker;
  let events: amqp.ChannelModel;
  let ledgerDb: pg.Pool;
  const credited: Array<Record<string, string>> = [];
  const secret = newSecret();
  let base: string;

  before(async () => {
    const { databaseUrl, redisUrl } = await backingServices();
    vhost = await createFleetVhost('deposits-e2e');
    const [walletSchema, whSchema, rcSchema] = [
      await createSchemaName('wallet'),
      await createSchemaName('webhooks'),
      await createSchemaName('recon', { outboxReader: true }),
    ];
    schemas.push(walletSchema, whSchema, rcSchema);
    kms = await startKmsEmulator({ port: 0 });
    solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    anvil = await startAnvil({ port: 0 });
    const common = {
      FLEET_DEV_MODE: 'true',
      REDIS_URL: redisUrl,
      HTTP_PORT: '0',
      LOG_LEVEL: 'silent',
      SOLANA_RPC_URL: solana.url,
      EVM_RPC_URL: anvil.url,
      EVM_FINALITY: '1',
    };
    wallet = createWalletService(loadWalletConfig({ ...common, AMQP_URL: vhost.as('wallet'), ...walletSchema.env, KMS_ENDPOINT: kms.endpoint }), silent);
    webhooks = createWebhooksService(
      loadWebhooksConfig({
        ...common,
        AMQP_URL: vhost.as('webhooks'),
        ...whSchema.env,
        WEBHOOK_SECRETS: secret,
        DEPOSIT_MAX_ATTEMPTS: '3',
        DEPOSIT_RETRY_INITIAL_MS: '50',
        DEPOSIT_RETRY_MAX_MS: '200',
      }),
      silent,
    );
    reconciliation = createReconciliationService(
      loadReconciliationConfig({
        ...common,
        AMQP_URL: vhost.as('reconciliation'),
        ...rcSchema.env,
        ADMIN_HTTP_PORT: '0',
        RECONCILE_INITIAL_DELAY_MS: '3600000',
        OUTBOX_SCHEMAS: `${walletSchema.schema},${whSchema.schema}`,
      }),
      silent,
    );
    // The webhooks service first: its queue for wallet.created must exist before wallets are made.
    await webhooks.start();
    await wallet.start();
    await reconciliation.start();
    base = `http://127.0.0.1:${webhooks.port()}`;
    ledgerDb = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${whSchema.schema}` });
    events = await amqp.connect(vhost.url);
    const ch = await events.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'wallet.events', 'deposit.credited');
    await ch.consume(q.queue, (m) => m && credited.push(JSON.parse(m.content.toString())), { noAck: true });
    // The product's backend: creates wallets and pays.
    rpc = createBroker({ url: vhost.as('backend'), service: 'test-backend', logger: silent, topology: defineTopology({ queues: [] }) });
    await rpc.start();
  });

  after(async () => {
    await rpc?.stop();
    await events?.close().catch(() => undefined);
    await ledgerDb?.end();
    await reconciliation?.stop();
    await wallet?.stop();
    await webhooks?.stop();
    await anvil?.stop();
    await solana?.stop();
    await kms?.stop();
    await vhost?.drop();
    for (const s of schemas) await s.drop();
  });

  const ledgerOf = async (walletId: string) =>
    (await ledgerDb.query('SELECT deposit_id, amount::text AS amount FROM ledger WHERE wallet_id = $1', [walletId])).rows as Array<{
      deposit_id: string;
      amount: string;
    }>;

  /** The webhook posted as the indexer would, answered 200, then credited (the job no longer pending). */
  async function depositOf(body: Record<string, unknown>): Promise<{ jobId: string; status: string }> {
    const res = await deliver({ base, secret }, { body });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const jobId = res.body.jobId as string;
    const status = await waitFor(
      async () => {
        const s = (await ledgerDb.query('SELECT status FROM deposits WHERE deposit_id = $1', [jobId])).rows[0]?.status as string | undefined;
        return s && s !== 'pending' ? s : undefined;
      },
      { timeoutMs: 30_000, what: 'the deposit settled' },
    );
    return { jobId, status };
  }

  it('should credit SOL sent by a KMS-signed transfer to another fleet wallet, once, to that wallet', async () => {
    const alice = await rpc.request('wallet.management.create', { userId: `alice-${randomUUID()}`, chain: 'SOL' });
    const bob = await rpc.request('wallet.management.create', { userId: `bob-${randomUUID()}`, chain: 'SOL' });
    solana.airdrop(alice.address, 2_000_000_000n);
    const sent = await rpc.request('wallet.transaction.transferSol', {
      userId: alice.userId,
      walletId: alice.walletId,
      recipient: bob.address,
      amount: '100000000',
    });
    assert.notEqual(sent.status, 'failed');

    const body = { chain: 'SOL', txHash: sent.signature, token: 'native', amount: '100000000', toAddress: bob.address };
    const first = await depositOf(body);
    assert.equal(first.status, 'credited');
    // The indexer delivers again (it always may): same job, nothing new.
    const again = await deliver({ base, secret }, { body });
    assert.deepEqual([again.status, again.body.jobId], [200, first.jobId]);
    assert.deepEqual(await ledgerOf(bob.walletId), [{ deposit_id: first.jobId, amount: '100000000' }]);
    const event = await waitFor(() => credited.find((e) => e.depositId === first.jobId), { what: 'deposit.credited' });
    assert.deepEqual([event.walletId, event.userId], [bob.walletId, bob.userId]);
    const balance = await rpc.request('wallet.balance.get', { userId: bob.userId, walletId: bob.walletId });
    assert.equal(balance.amount, '100000000', 'the wallet service sees what the ledger credited');

    // A webhook that says more arrived than did is not credited.
    const inflated = await depositOf({ ...body, eventIndex: 1, amount: '200000000' });
    assert.equal(inflated.status, 'failed');
    assert.equal((await ledgerOf(bob.walletId)).length, 1);
  });

  it('should credit ETH sent on anvil to a fleet wallet, and not credit a transaction that does not exist', async () => {
    const carol = await rpc.request('wallet.management.create', { userId: `carol-${randomUUID()}`, chain: 'ETH' });
    const payer = createWalletClient({ account: privateKeyToAccount(ANVIL_KEY), transport: http(anvil.url) });
    const txHash = await payer.sendTransaction({
      to: carol.address as Hex,
      value: 5_000_000_000n,
      chain: { id: 31337, name: 'anvil', nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [anvil.url] } } },
    });
    const ok = await depositOf({ chain: 'ETH', txHash, token: 'native', amount: '5000000000', toAddress: carol.address });
    assert.equal(ok.status, 'credited');
    assert.deepEqual(await ledgerOf(carol.walletId), [{ deposit_id: ok.jobId, amount: '5000000000' }]);

    // Not on chain: retried (the sender's node may be ahead of ours), then failed; never credited.
    const ghost = await depositOf({ chain: 'ETH', txHash: `0x${randomBytes(32).toString('hex')}`, token: 'native', amount: '1', toAddress: carol.address });
    assert.equal(ghost.status, 'failed');
    assert.equal((await ledgerOf(carol.walletId)).length, 1);

    // Reconciliation agrees: nothing pending, no drift between deposits and ledger.
    const pass = await reconciliation.runPass();
    assert.equal(pass.outcome, 'completed', JSON.stringify(pass));
    assert.ok('report' in pass && !('error' in pass.report.drift));
    assert.deepEqual(
      [
        pass.report.drift.depositsPending,
        pass.report.drift.creditedWithoutLedgerEntry,
        pass.report.drift.ledgerEntryWithoutCredit,
        pass.report.drift.ledgerAmountMismatch,
      ],
      [0, 0, 0, 0],
    );
  });
});
