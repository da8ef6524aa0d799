// The generated RabbitMQ definitions (infra/rabbitmq/definitions.json) imported into a fresh vhost:
// the broker itself refuses what the catalogue does not allow, whatever the client sends.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { operations, events, type Role, roles, mayCall } from '@wallet-fleet/contracts';
import { applyBrokerDefinitions, createVhost, rabbitAdmin, type TestVhost } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import { createBroker } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { definitionsFile, fleetDefinitions, fleetTopologies } from '../../scripts/broker-definitions.js';

/** Publishes one message with a confirm; resolves 'ok' or the broker's reason for closing the channel. */
async function tryPublish(url: string, exchange: string, routingKey: string, props: amqp.Options.Publish = {}): Promise<string> {
  const conn = await amqp.connect(url);
  conn.on('error', () => undefined);
  try {
    const ch = await conn.createConfirmChannel();
    const closed = new Promise<string>((resolve) => ch.on('error', (e: Error) => resolve(e.message)));
    const confirmed = new Promise<string>((resolve) => {
      try {
        ch.publish(exchange, routingKey, Buffer.from('{}'), props, (err) => resolve(err ? `nack: ${err}` : 'ok'));
      } catch (e) {
        resolve((e as Error).message);
      }
    });
    // A refused publish closes the channel and its confirm never comes (amqplib then fails it too).
    return await Promise.race([closed, confirmed]);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

describe('broker definitions (infra/rabbitmq/definitions.json)', () => {
  let vhost: TestVhost;

  before(async () => {
    vhost = await createVhost('trust');
    await applyBrokerDefinitions(vhost.vhost, fleetDefinitions(vhost.vhost));
  });
  after(() => vhost?.drop());

  it("should be in step with the catalogue and the services' topologies (run `pnpm broker-definitions` after a change)", () => {
    assert.deepEqual(JSON.parse(readFileSync(definitionsFile, 'utf8')), JSON.parse(JSON.stringify(fleetDefinitions())));
  });

  it('should have one user per role, none with a password in the file', () => {
    const defs = fleetDefinitions();
    assert.deepEqual(defs.users.map((u) => u.name).sort(), [...roles].sort());
    for (const u of defs.users) assert.equal(u.password_hash, '');
  });

  it('should refuse the webhooks user a transaction request, a wallet.created event and an audit event of the wallet service (ACCESS_REFUSED)', async () => {
    const url = vhost.as('webhooks');
    assert.match(await tryPublish(url, 'wallet.commands', 'wallet.transaction.sign'), /ACCESS_REFUSED.*wallet\.transaction\.sign/);
    assert.match(await tryPublish(url, 'wallet.events', 'wallet.created'), /ACCESS_REFUSED.*wallet\.created/);
    assert.match(await tryPublish(url, 'wallet.events', 'audit.wallet.create'), /ACCESS_REFUSED/);
    assert.match(await tryPublish(url, 'wallet.retry', 'wallet.requests.dlq'), /ACCESS_REFUSED/);
    // What it may publish goes through.
    assert.equal(await tryPublish(url, 'wallet.events', 'deposit.credited'), 'ok');
    assert.equal(await tryPublish(url, 'wallet.events', 'audit.webhooks.deposit.credit'), 'ok');
  });

  it("should refuse a message whose user_id names another user than the connection's", async () => {
    const reason = await tryPublish(vhost.as('backend'), 'wallet.commands', 'wallet.management.get', { userId: 'provisioning' });
    assert.match(reason, /PRECONDITION_FAILED.*user_id property set to 'provisioning' but authenticated user was 'backend'/);
    assert.equal(await tryPublish(vhost.as('backend'), 'wallet.commands', 'wallet.management.get', { userId: 'backend' }), 'ok');
  });

  it('should let every role publish exactly the operations the catalogue lets it call', async function () {
    this.timeout(120_000);
    for (const role of roles as readonly Role[]) {
      for (const op of Object.keys(operations) as Array<keyof typeof operations>) {
        const outcome = await tryPublish(vhost.as(role), 'wallet.commands', op, { userId: role });
        if (mayCall(role, op)) assert.equal(outcome, 'ok', `${role} → ${op}`);
        else assert.match(outcome, /ACCESS_REFUSED/, `${role} → ${op}`);
      }
    }
  });

  it('should let a service bind only what its own topology binds', async () => {
    const conn = await amqp.connect(vhost.as('webhooks'));
    conn.on('error', () => undefined);
    try {
      const ch = await conn.createChannel();
      const closed = new Promise<string>((resolve) => ch.on('error', (e: Error) => resolve(e.message)));
      // Declared ahead by the definitions (a classic redeclaration would be refused: 406).
      await ch.checkQueue('webhooks.wallets');
      await ch.bindQueue('webhooks.wallets', 'wallet.events', 'wallet.created');
      // Listening to another service's requests is refused.
      const refused = ch.bindQueue('webhooks.wallets', 'wallet.commands', 'wallet.transaction.sign').then(
        () => 'bound',
        (e: Error) => e.message,
      );
      assert.match(await Promise.race([closed, refused]), /ACCESS_REFUSED/);
    } finally {
      await conn.close().catch(() => undefined);
    }
  });

  it("should declare every service's queues ahead, and let each service declare its topology again as its own user", async () => {
    const held = new Set((await rabbitAdmin.queues(vhost.vhost)).map((q) => q.name));
    for (const [service, topology] of Object.entries(fleetTopologies())) {
      for (const q of topology.queues) {
        // Request queues are not: a request to a service that never ran is UNROUTABLE at once.
        assert.equal(held.has(q.name) && held.has(`${q.name}.dlq`), q.kind === 'events', `${q.name} and its DLQ declared ahead: only event queues`);
        if (q.kind === 'events') assert.ok(held.has(`${service}.delay.1000`), `${service}'s delay tiers declared ahead`);
      }
      // Same arguments (no 406) and permissions that cover its tiers and their bindings (no 403).
      const b = createBroker({ url: vhost.as(service), service, topology, logger: createLogger({ service, level: 'silent' }) });
      try {
        await b.start();
      } finally {
        await b.stop();
      }
    }
    assert.ok(held.has('wallet.unroutable'), 'the parking queue of unroutable events');
  });

  it('should not name an event nobody may publish', () => {
    for (const name of Object.keys(events)) {
      const writers = fleetDefinitions().topic_permissions.filter((t) => t.exchange === 'wallet.events' && t.write !== '^$');
      assert.ok(
        writers.some((t) => new RegExp(t.write).test(name === 'audit.#' ? 'audit.wallet.x' : name)),
        name,
      );
    }
  });
});
