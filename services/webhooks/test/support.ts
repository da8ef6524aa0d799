import { randomBytes, randomUUID } from 'node:crypto';
import { type Broker, createBroker, defineTopology } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { createWebhooksService } from '../src/app.js';
import { loadWebhooksConfig } from '../src/config.js';

export const silent = createLogger({ service: 'test', level: 'silent' });
export const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
/** A well-formed Solana transaction signature (base58 of 64 random bytes) that no chain has seen. */
export function randomSolSignature(): string {
  const bytes = randomBytes(64);
  bytes[0] = bytes[0]! | 1; // no leading zero byte: those encode as '1'
  let n = BigInt(`0x${bytes.toString('hex')}`);
  let out = '';
  while (n > 0n) {
    out = BASE58[Number(n % 58n)] + out;
    n /= 58n;
  }
  return out;
}

/** One webhooks service in its own vhost and schema, a sender, and a view of what it publishes. */
export interface Harness {
  vhost: TestVhost;
  schema: TestSchema;
  service: ReturnType<typeof createWebhooksService>;
  db: pg.Pool;
  base: string;
  secret: string;
  /** Everything published on wallet.events under deposit.* and audit.webhooks.*. */
  seen: Array<{ routingKey: string; body: any }>;
  events: amqp.ChannelModel;
  /**
   * A started client as the broker user of `role` (stopped with the harness): `wallet` to announce
   * wallets, `webhooks` to stand in for an intake process, `ops` for the operations.
   */
  as(role: string): Promise<Broker>;
  /** A wallet of ours on `chain`, announced as the wallet service announces it, once webhooks knows it. */
  registerWallet(chain: 'SOL' | 'ETH', address: string): Promise<{ walletId: string; userId: string; chain: 'SOL' | 'ETH'; address: string }>;
  stop(): Promise<void>;
}

export async function startHarness(env: Record<string, string> = {}): Promise<Harness> {
  const { databaseUrl, redisUrl } = await backingServices();
  const vhost = await createFleetVhost('webhooks');
  const schema = await createSchemaName('webhooks');
  const secret = env.WEBHOOK_SECRETS ?? newSecret();
  const events = await amqp.connect(vhost.url, { noDelay: true });
  const seen: Harness['seen'] = [];
  const ch = await events.createChannel();
  await ch.assertExchange('wallet.events', 'topic', { durable: true });
  const q = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(q.queue, 'wallet.events', 'deposit.*');
  await ch.bindQueue(q.queue, 'wallet.events', 'audit.webhooks.#');
  await ch.consume(q.queue, (m) => m && seen.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }), { noAck: true });
  const config = loadWebhooksConfig({
    FLEET_DEV_MODE: 'true',
    AMQP_URL: vhost.as('webhooks'),
    ...schema.env,
    REDIS_URL: redisUrl,
    HTTP_PORT: '0',
    LOG_LEVEL: 'silent',
    WEBHOOK_SECRETS: secret,
    DEPOSIT_RETRY_INITIAL_MS: '10',
    DEPOSIT_RETRY_MAX_MS: '50',
    DEPOSIT_MAX_ATTEMPTS: '3',
    CHAIN_RPC_TIMEOUT_MS: '2000',
    ...env,
  });
  const service = createWebhooksService(config, silent);
  await service.start();
  const db = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema.schema}` });
  const clients: Broker[] = [];
  const as = async (role: string) => {
    const client = createBroker({ url: vhost.as(role), service: `test-${role}`, logger: silent, topology: defineTopology({ queues: [] }) });
    clients.push(client);
    await client.start();
    return client;
  };
  let announcer: Promise<Broker> | undefined;
  return {
    vhost,
    schema,
    service,
    db,
    base: `http://127.0.0.1:${service.port()}`,
    secret: secret.split(',')[0]!.replace(/^[^=]+=(?=whsec_)/, ''),
    seen,
    events,
    async registerWallet(chain, address) {
      announcer ??= as('wallet');
      const wallet = { walletId: randomUUID(), userId: `u-${randomUUID()}`, chain, address, label: null, isActive: true, createdAt: new Date().toISOString() };
      await (await announcer).publishEvent('wallet.created', wallet);
      await waitFor(async () => (await db.query('SELECT 1 FROM known_addresses WHERE wallet_id = $1', [wallet.walletId])).rowCount === 1, {
        what: 'wallet.created consumed',
      });
      return wallet;
    },
    as,
    async stop() {
      await Promise.all(clients.map((c) => c.stop()));
      await service.stop();
      await events.close().catch(() => undefined);
      await db.end();
      await vhost.drop();
      await schema.drop();
    },
  };
}

export interface Delivery {
  body?: unknown;
  raw?: string;
  secret?: string;
  id?: string;
  at?: Date;
  headers?: Record<string, string | undefined>;
}

/** Posts a deposit webhook signed the way a `standardwebhooks` sender signs it. */
export async function deliver(h: Pick<Harness, 'base' | 'secret'>, d: Delivery): Promise<{ status: number; body: any }> {
  const raw = d.raw ?? JSON.stringify(d.body);
  const id = d.id ?? `msg_${randomUUID()}`;
  const at = d.at ?? new Date();
  const signature = new Webhook(d.secret ?? h.secret).sign(id, at, raw);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
  for (const [k, v] of Object.entries(d.headers ?? {})) {
    if (v === undefined) delete headers[k];
    else headers[k] = v;
  }
  const res = await fetch(`${h.base}/webhooks/deposits`, { method: 'POST', headers, body: raw });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body };
}
