import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { DIRECT_REPLY_TO, ErrorCode, Exchanges, FleetError, Headers, mayCall, operations, roles, type Role } from '@wallet-fleet/contracts';
import { applyBrokerDefinitions, waitFor, type TestVhost } from '@wallet-fleet/testing';
import { brokerAccessFromEnv, brokerDefinitions, defineTopology, type BrokerAccess, type Topology } from '@wallet-fleet/messaging';
import amqp, { type GetMessage } from 'amqplib';
import { Registry } from 'prom-client';
import { broker, eachTestInFreshVhost, rawChannel, takeAll, text } from './support.js';

const auditEvent = (service: string) => ({
  eventId: randomUUID(),
  occurredAt: new Date().toISOString(),
  actor: { type: 'service', id: service },
  action: 'wallet.create',
  resource: { type: 'wallet', id: 'w1' },
  status: 'success',
});

describe('messaging: who may send what (authorize)', () => {
  describe('the role map', () => {
    it('should give a broker user the role of its name, or the one BROKER_USER_ROLES maps it to, and none without user_id', () => {
      const access = brokerAccessFromEnv({ BROKER_USER_ROLES: 'svc-wallet-prod:wallet, tools:ops,tools:backend' });
      assert.deepEqual(access.rolesOf('webhooks'), ['webhooks']);
      assert.deepEqual(access.rolesOf('svc-wallet-prod'), ['wallet']);
      assert.deepEqual(access.rolesOf('tools'), ['ops', 'backend']);
      assert.deepEqual(access.rolesOf('guest'), []);
      assert.deepEqual(access.rolesOf(undefined), []);
    });

    it('should refuse a malformed map or an unknown role, naming the variable', () => {
      assert.throws(() => brokerAccessFromEnv({ BROKER_USER_ROLES: 'svc-wallet' }), /BROKER_USER_ROLES/);
      assert.throws(() => brokerAccessFromEnv({ BROKER_USER_ROLES: 'x:root' }), /BROKER_USER_ROLES: root is not a role/);
    });
  });

  describe('requests (every operation of the catalogue)', () => {
    let vhost: TestVhost;
    eachTestInFreshVhost((v) => (vhost = v));

    it('should answer FORBIDDEN to every role the catalogue does not name as a caller, and let the named ones through', async function () {
      this.timeout(60_000);
      // The requests come from the test's user; which role it holds is switched between calls.
      let current: readonly Role[] = [];
      const access: BrokerAccess = { rolesOf: (u) => (u === vhost.user ? current : []) };
      const registry = new Registry();
      const server = broker(
        vhost,
        defineTopology({ queues: [{ name: 'all.commands', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.#' }] }] }),
        { access, registry },
      );
      const reached: string[] = [];
      const handlers = Object.fromEntries(Object.keys(operations).map((op) => [op, async () => void reached.push(op)]));
      server.handleCommands('all.commands', handlers);
      await server.start();
      const ch = await rawChannel(vhost);
      const replies = new Map<string, { ok: boolean; error?: { code: string; retryable: boolean } }>();
      await ch.consume(DIRECT_REPLY_TO, (m) => m && replies.set(m.properties.correlationId, JSON.parse(m.content.toString())), { noAck: true });
      const call = async (op: string, props: amqp.Options.Publish = { userId: vhost.user }) => {
        const correlationId = randomUUID();
        ch.publish(Exchanges.commands, op, Buffer.from('{}'), { replyTo: DIRECT_REPLY_TO, correlationId, ...props });
        return waitFor(() => replies.get(correlationId), { what: `reply to ${op}` });
      };

      let forbidden = 0;
      for (const op of Object.keys(operations) as Array<keyof typeof operations>) {
        for (const role of roles) {
          current = [role];
          const reply = await call(op);
          if (mayCall(role, op)) {
            // Past the gate: the body `{}` meets the operation's schema or its validation, never FORBIDDEN.
            assert.notEqual(reply.error?.code, ErrorCode.FORBIDDEN, `${role} → ${op}`);
          } else {
            assert.deepEqual([reply.ok, reply.error?.code, reply.error?.retryable], [false, ErrorCode.FORBIDDEN, false], `${role} → ${op}`);
            forbidden++;
          }
        }
        current = [];
        assert.equal((await call(op, {})).error?.code, ErrorCode.FORBIDDEN, `${op} without user_id`);
        forbidden++;
      }
      const counted = (await registry.getSingleMetric('messaging_forbidden_total')!.get()).values.reduce((n, v) => n + v.value, 0);
      assert.equal(counted, forbidden);

      // And a well-formed request of an allowed caller is served.
      current = ['backend'];
      const before = reached.length;
      const correlationId = randomUUID();
      ch.publish(Exchanges.commands, 'wallet.audit.query', Buffer.from(JSON.stringify({ userId: 'u-1' })), {
        replyTo: DIRECT_REPLY_TO,
        correlationId,
        userId: vhost.user,
      });
      assert.equal((await waitFor(() => replies.get(correlationId), { what: 'the reply' })).ok, true);
      assert.deepEqual(reached.slice(before), ['wallet.audit.query']);
    });
  });

  describe('events, with per-role broker users (generated definitions)', () => {
    let vhost: TestVhost;
    const topologies: Record<string, Topology> = {
      audit: defineTopology({
        queues: [
          {
            name: 'audit.events',
            kind: 'events',
            bindings: [{ exchange: Exchanges.events, pattern: 'audit.#' }],
            retry: { maxAttempts: 3, initialDelayMs: 20, maxDelayMs: 20 },
          },
        ],
      }),
      webhooks: defineTopology({
        queues: [{ name: 'webhooks.wallets', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'wallet.created' }] }],
      }),
      wallet: defineTopology({ queues: [] }),
      provisioning: defineTopology({ queues: [] }),
      reconciliation: defineTopology({ queues: [] }),
    };
    eachTestInFreshVhost((v) => (vhost = v));
    beforeEach(async () => {
      await applyBrokerDefinitions(vhost.vhost, brokerDefinitions(topologies as never, vhost.vhost));
    });

    async function publisher(role: string) {
      const conn = await amqp.connect(vhost.as(role));
      conn.on('error', () => undefined);
      const ch = await conn.createConfirmChannel();
      ch.on('error', () => undefined);
      return {
        publish: (exchange: string, key: string, body: unknown, props: amqp.Options.Publish = {}) =>
          new Promise<void>((resolve, reject) =>
            ch.publish(exchange, key, Buffer.from(JSON.stringify(body)), { userId: role, ...props }, (e) => (e ? reject(e) : resolve())),
          ),
        close: () => conn.close(),
      };
    }

    it("should dead-letter an audit event of another producer (forbidden_producer, counted), handle the named producer's, and retry its own copies under its own user", async function () {
      this.timeout(30_000);
      const registry = new Registry();
      const audit = broker({ ...vhost, url: vhost.as('audit') }, topologies.audit!, { service: 'audit', access: brokerAccessFromEnv({}), registry });
      const handled: string[] = [];
      let failOnce = true;
      audit.handleEvents('audit.events', {
        'audit.#': async (input, ctx) => {
          if (input.actor.id === 'wallet' && failOnce) {
            failOnce = false;
            throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'database down');
          }
          handled.push(`${ctx.routingKey}#${ctx.attempt}`);
        },
      });
      await audit.start();

      // Allowed by the broker (the administrative user has no topic permissions) but not by the
      // catalogue: without user_id, and as a user holding no role.
      const admin = await rawChannel(vhost);
      admin.publish(Exchanges.events, 'audit.wallet.create', Buffer.from(JSON.stringify(auditEvent('x'))), { messageId: 'no-user' });
      admin.publish(Exchanges.events, 'audit.wallet.create', Buffer.from(JSON.stringify(auditEvent('x'))), { messageId: 'admin', userId: vhost.user });
      // The webhooks user claims a routing key by header, through the default exchange.
      const webhooks = await publisher('webhooks');
      await webhooks.publish('', 'audit.events', auditEvent('x'), { messageId: 'injected', headers: { [Headers.originalRoutingKey]: 'audit.wallet.create' } });
      // The wallet service's own audit event: fails once, comes back through wallet.retry, is stored.
      const wallet = await publisher('wallet');
      await wallet.publish(Exchanges.events, 'audit.wallet.create', auditEvent('wallet'));

      await waitFor(() => handled.length === 1, { what: 'the wallet event handled' });
      assert.deepEqual(handled, ['audit.wallet.create#2']);
      const dead: GetMessage[] = [];
      await waitFor(async () => dead.push(...(await takeAll(vhost, 'audit.events.dlq'))) >= 3, { what: 'three dead letters' });
      assert.deepEqual(
        dead.map((m) => [m.properties.messageId, text(m.properties.headers![Headers.deathReason]), text(m.properties.headers![Headers.errorCode])]).sort(),
        [
          ['admin', 'forbidden_producer', 'FORBIDDEN'],
          ['injected', 'forbidden_producer', 'FORBIDDEN'],
          ['no-user', 'forbidden_producer', 'FORBIDDEN'],
        ],
      );
      const metric = await registry.getSingleMetric('messaging_dead_lettered_total')!.get();
      assert.equal(
        metric.values.filter((v) => v.labels.reason === 'forbidden_producer').reduce((n, v) => n + v.value, 0),
        3,
      );
      await webhooks.close();
      await wallet.close();
    });

    it('should refuse, at the broker, a wallet.created published with the webhooks user', async () => {
      const webhooks = await publisher('webhooks');
      await assert.rejects(webhooks.publish(Exchanges.events, 'wallet.created', {}), /closed|ACCESS_REFUSED/);
      await webhooks.close().catch(() => undefined);
    });
  });
});
