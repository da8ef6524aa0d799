// Trust boundaries on the broker, against the real webhooks service process running as its own
// broker user with the generated definitions: a forged wallet.created never reaches its address
// table, whichever way it is sent.
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { Headers } from '@wallet-fleet/contracts';
import {
  applyBrokerDefinitions,
  backingServices,
  createSchemaName,
  createVhost,
  rabbitAdmin,
  type TestSchema,
  type TestVhost,
  waitFor,
} from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { fleetDefinitions } from '../../scripts/broker-definitions.js';
import { type ServiceProcess, startService } from './support/service-process.js';

const walletCreated = (address: string) => ({
  walletId: randomUUID(),
  userId: 'mallory',
  chain: 'ETH',
  address,
  label: null,
  isActive: true,
  createdAt: new Date().toISOString(),
});

/** Publishes with a confirm as `url`'s user; resolves 'ok' or the reason the broker closed the channel. */
async function publishAs(url: string, exchange: string, routingKey: string, body: unknown, props: amqp.Options.Publish): Promise<string> {
  const conn = await amqp.connect(url);
  conn.on('error', () => undefined);
  try {
    const ch = await conn.createConfirmChannel();
    const closed = new Promise<string>((resolve) => ch.on('error', (e: Error) => resolve(e.message)));
    const confirmed = new Promise<string>((resolve) =>
      ch.publish(exchange, routingKey, Buffer.from(JSON.stringify(body)), props, (err) => resolve(err ? 'nack' : 'ok')),
    );
    return await Promise.race([closed, confirmed]);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

describe('trust boundaries: the webhooks service as its own broker user', () => {
  let vhost: TestVhost;
  let schema: TestSchema;
  let webhooks: ServiceProcess;
  let db: pg.Pool;

  before(async function () {
    this.timeout(60_000);
    const { databaseUrl, redisUrl } = await backingServices();
    vhost = await createVhost('trust-e2e');
    await applyBrokerDefinitions(vhost.vhost, fleetDefinitions(vhost.vhost));
    schema = await createSchemaName('trust');
    webhooks = await startService('webhooks', {
      AMQP_URL: vhost.as('webhooks'),
      DATABASE_URL: databaseUrl,
      DATABASE_SCHEMA: schema.schema,
      REDIS_URL: redisUrl,
      LOG_LEVEL: 'error',
      WEBHOOK_SECRETS: `whsec_${randomBytes(32).toString('base64')}`,
      EVM_RPC_URL: 'http://127.0.0.1:9',
      SOLANA_RPC_URL: 'http://127.0.0.1:9',
      // This process checks every message: the suites' development switch is off here.
      BROKER_DEV_TRUST_GUEST: '',
    });
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  });
  after(async () => {
    await webhooks?.stop();
    await db?.end();
    await schema?.drop();
    await vhost?.drop();
  });

  const known = async (address: string) =>
    (await db.query(`SELECT 1 FROM "${schema.schema}".known_addresses WHERE address = $1`, [address.toLowerCase()])).rowCount ?? 0;

  it("should keep forged wallet.created events out of the address table and take the wallet service's", async function () {
    this.timeout(30_000);
    const forged = `0x${randomBytes(20).toString('hex')}`;
    // 1. With the webhooks service's own credentials, on wallet.events: the broker refuses the key.
    assert.match(await publishAs(vhost.as('webhooks'), 'wallet.events', 'wallet.created', walletCreated(forged), { userId: 'webhooks' }), /ACCESS_REFUSED/);
    // 2. Another service's credentials, into webhooks' queue through the default exchange, claiming
    //    the routing key by header.
    assert.equal(
      await publishAs(vhost.as('provisioning'), '', 'webhooks.wallets', walletCreated(forged), {
        userId: 'provisioning',
        messageId: 'injected',
        headers: { [Headers.originalRoutingKey]: 'wallet.created' },
      }),
      'ok',
    );
    // 3. A user the broker lets publish anything (the administrator), with no user_id.
    assert.equal(await publishAs(vhost.url, 'wallet.events', 'wallet.created', walletCreated(forged), { messageId: 'anonymous' }), 'ok');
    // 4. The wallet service's credentials: taken.
    const real = `0x${randomBytes(20).toString('hex')}`;
    assert.equal(await publishAs(vhost.as('wallet'), 'wallet.events', 'wallet.created', walletCreated(real), { userId: 'wallet' }), 'ok');

    await waitFor(async () => (await known(real)) === 1, { what: "the wallet service's address stored" });
    const dead = await waitFor(
      async () => {
        const q = await rabbitAdmin.queue(vhost.vhost, 'webhooks.wallets.dlq');
        return q.messages === 2 ? rabbitAdmin.drain(vhost.vhost, 'webhooks.wallets.dlq') : undefined;
      },
      { what: 'two dead letters' },
    );
    assert.deepEqual(dead.map((m) => [m.properties.message_id, m.properties.headers?.[Headers.deathReason]]).sort(), [
      ['anonymous', 'forbidden_producer'],
      ['injected', 'forbidden_producer'],
    ]);
    assert.equal(await known(forged), 0);
    const metrics = await (await fetch(webhooks.url('/metrics'))).text();
    const forbidden = [...metrics.matchAll(/^messaging_forbidden_total\{queue="webhooks\.wallets"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(forbidden, 2);
  });

  it('should answer FORBIDDEN to a request of a role the catalogue does not name, and serve a named one', async function () {
    this.timeout(20_000);
    const call = async (url: string, user: string) => {
      const conn = await amqp.connect(url);
      try {
        const ch = await conn.createChannel();
        let answer: (r: { ok: boolean; error?: { code: string } }) => void = () => undefined;
        const reply = new Promise<{ ok: boolean; error?: { code: string } }>((resolve) => (answer = resolve));
        await ch.consume('amq.rabbitmq.reply-to', (m) => m && answer(JSON.parse(m.content.toString())), { noAck: true });
        ch.publish('wallet.commands', 'wallet.deposits.summary', Buffer.from('{}'), {
          replyTo: 'amq.rabbitmq.reply-to',
          correlationId: randomUUID(),
          userId: user,
        });
        return await reply;
      } finally {
        await conn.close().catch(() => undefined);
      }
    };
    // The administrator passes the broker but holds no role.
    assert.equal((await call(vhost.url, vhost.user)).error?.code, 'FORBIDDEN');
    assert.equal((await call(vhost.as('ops'), 'ops')).ok, true);
  });
});
