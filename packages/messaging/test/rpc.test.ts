import assert from 'node:assert/strict';
import { DIRECT_REPLY_TO, ErrorCode, Exchanges, FleetError, Headers, isFleetError } from '@wallet-fleet/contracts';
import { currentContext } from '@wallet-fleet/service-kit';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, killConnections, rawChannel, sleep } from './support.js';

const topology = defineTopology({
  queues: [
    {
      name: 'audit.commands',
      kind: 'rpc',
      bindings: [
        { exchange: Exchanges.commands, pattern: 'wallet.audit.*' },
        { exchange: Exchanges.commands, pattern: 'wallet.provisioning.status' },
      ],
    },
  ],
});

describe('messaging: request/response', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should return the typed result of a handler to the caller', async () => {
    const server = broker(vhost, topology);
    const seen: Array<{ correlationId?: string; traceparent?: string }> = [];
    server.handleCommands('audit.commands', {
      'wallet.audit.verify': async (_input, ctx) => {
        seen.push({ ...currentContext() });
        assert.equal(ctx.routingKey, 'wallet.audit.verify');
        return { valid: true, checked: 42 };
      },
    });
    await server.start();
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    const result = await client.request('wallet.audit.verify', {});
    assert.deepEqual(result, { valid: true, checked: 42 });
    assert.equal(seen.length, 1);
    assert.ok(seen[0]!.correlationId, 'handler runs with a correlation id in its work context');
    assert.match(seen[0]!.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('should throw the FleetError the handler threw, with its code and retryable flag', async () => {
    const server = broker(vhost, topology);
    server.handleCommands('audit.commands', {
      'wallet.provisioning.status': async (input) => {
        throw FleetError.retryable(ErrorCode.RATE_LIMITED, `slow down ${input.userId}`);
      },
      'wallet.audit.verify': async () => {
        throw new Error('SELECT secret FROM keys failed');
      },
    });
    await server.start();
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    await assert.rejects(client.request('wallet.provisioning.status', { userId: 'u1' }), (e: unknown) => {
      assert.ok(isFleetError(e, ErrorCode.RATE_LIMITED));
      assert.equal(e.retryable, true);
      assert.equal(e.message, 'slow down u1');
      return true;
    });
    await assert.rejects(client.request('wallet.audit.verify', {}), (e: unknown) => {
      assert.ok(isFleetError(e, ErrorCode.INTERNAL), String(e));
      assert.equal(e.retryable, false, 'an unexpected exception is not retryable');
      assert.doesNotMatch(e.message, /secret/, 'internal error text stays in the server logs');
      return true;
    });
  });

  it('should reject an invalid body client-side without sending it', async () => {
    const client = broker(vhost, topology);
    await client.start();
    await assert.rejects(client.request('wallet.provisioning.status', { userId: 'has spaces!' }), (e: unknown) => {
      assert.ok(isFleetError(e, ErrorCode.VALIDATION_FAILED));
      const fields = e.details?.fields as Array<{ path: string }>;
      assert.equal(fields[0]?.path, 'userId');
      return true;
    });
    assert.equal(await depth(vhost, 'audit.commands'), 0, 'nothing was sent');
  });

  it('should reply VALIDATION_FAILED with field errors to a request that violates the schema', async () => {
    const server = broker(vhost, topology);
    let called = 0;
    server.handleCommands('audit.commands', {
      'wallet.provisioning.status': async () => {
        called++;
        return { userId: 'x', chains: [] };
      },
    });
    await server.start();
    const ch = await rawChannel(vhost);
    const replies: Array<{ body: unknown; correlationId: string }> = [];
    await ch.consume(DIRECT_REPLY_TO, (m) => m && replies.push({ body: JSON.parse(m.content.toString()), correlationId: m.properties.correlationId }), {
      noAck: true,
    });
    ch.publish(Exchanges.commands, 'wallet.provisioning.status', Buffer.from(JSON.stringify({ userId: 7 })), {
      replyTo: DIRECT_REPLY_TO,
      correlationId: 'c-1',
      userId: vhost.user,
    });
    ch.publish(Exchanges.commands, 'wallet.provisioning.status', Buffer.from('{"userId": '), {
      replyTo: DIRECT_REPLY_TO,
      correlationId: 'c-2',
      userId: vhost.user,
    });
    await waitFor(() => replies.length === 2, { what: 'two replies' });
    for (const r of replies) {
      const body = r.body as { ok: boolean; error: { code: string; details: { fields: Array<{ path: string; message: string }> } } };
      assert.equal(body.ok, false);
      assert.equal(body.error.code, ErrorCode.VALIDATION_FAILED);
      assert.ok(body.error.details.fields.length >= 1);
    }
    const byId = Object.fromEntries(replies.map((r) => [r.correlationId, r.body])) as Record<
      string,
      { error: { details: { fields: Array<{ path: string; message: string }> } } }
    >;
    assert.equal(byId['c-1']!.error.details.fields[0]!.path, 'userId');
    assert.match(byId['c-2']!.error.details.fields[0]!.message, /malformed JSON/);
    assert.equal(called, 0, 'the handler never saw them');
  });

  it('should reply UNKNOWN_OPERATION to an operation the queue has no handler for', async () => {
    const server = broker(vhost, topology);
    server.handleCommands('audit.commands', { 'wallet.audit.verify': async () => ({ valid: true, checked: 0 }) });
    await server.start();
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    await assert.rejects(client.request('wallet.audit.query', {}), (e: unknown) => isFleetError(e, ErrorCode.UNKNOWN_OPERATION));
  });

  it('should reject with TIMEOUT when no reply arrives in time', async () => {
    const server = broker(vhost, topology);
    server.handleCommands('audit.commands', {
      'wallet.audit.verify': async (_i, ctx) => {
        await new Promise((r) => ctx.signal.addEventListener('abort', r));
        return { valid: true, checked: 0 };
      },
    });
    await server.start();
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    await assert.rejects(client.request('wallet.audit.verify', {}, { timeoutMs: 150 }), (e: unknown) => {
      assert.ok(isFleetError(e, ErrorCode.TIMEOUT));
      assert.equal(e.retryable, true);
      return true;
    });
  });

  it('should fail fast with UNROUTABLE when no service is bound to the operation', async () => {
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    await assert.rejects(client.request('wallet.management.create', { userId: 'u1', chain: 'SOL' }, { timeoutMs: 20_000 }), (e: unknown) =>
      isFleetError(e, ErrorCode.UNROUTABLE),
    );
  });

  it('should process a request without reply_to and drop its reply', async () => {
    const server = broker(vhost, topology);
    const users: string[] = [];
    server.handleCommands('audit.commands', {
      'wallet.provisioning.status': async (input) => {
        users.push(input.userId);
        return { userId: input.userId, chains: [] };
      },
    });
    await server.start();
    const ch = await rawChannel(vhost);
    ch.publish(Exchanges.commands, 'wallet.provisioning.status', Buffer.from(JSON.stringify({ userId: 'fire-and-forget' })), { userId: vhost.user });
    await waitFor(() => users.length === 1, { what: 'the handler to run' });
    assert.deepEqual(users, ['fire-and-forget']);
    await server.stop();
    assert.equal(await depth(vhost, 'audit.commands'), 0, 'acked, not requeued');
    assert.equal(await depth(vhost, 'audit.commands.dlq'), 0);
  });

  it('should not process a request whose expiration or x-deadline passed', async () => {
    const server = broker(vhost, topology);
    const users: string[] = [];
    server.handleCommands('audit.commands', {
      'wallet.provisioning.status': async (input) => {
        users.push(input.userId);
        return { userId: input.userId, chains: [] };
      },
    });
    // Declared, not yet consumed: the requests wait in the queue.
    const declarer = broker(vhost, topology);
    await declarer.start();
    const ch = await rawChannel(vhost);
    const body = (userId: string) => Buffer.from(JSON.stringify({ userId }));
    ch.publish(Exchanges.commands, 'wallet.provisioning.status', body('expired-ttl'), { expiration: '30', userId: vhost.user });
    ch.publish(Exchanges.commands, 'wallet.provisioning.status', body('expired-deadline'), {
      userId: vhost.user,
      headers: { [Headers.deadline]: Date.now() + 30 },
    });
    ch.publish(Exchanges.commands, 'wallet.provisioning.status', body('in-time'), { userId: vhost.user, headers: { [Headers.deadline]: Date.now() + 60_000 } });
    // Waits out the 30 ms TTL and deadline above: their expiry is what this test is about.
    await sleep(100);
    await server.start();
    await waitFor(() => users.includes('in-time'), { what: 'the live request' });
    await server.stop();
    assert.equal(await depth(vhost, 'audit.commands'), 0);
    assert.deepEqual(users, ['in-time']);
  });

  it('should fail pending calls with UNAVAILABLE when the connection drops', async () => {
    const server = broker(vhost, topology);
    server.handleCommands('audit.commands', {
      'wallet.audit.verify': async () => {
        await sleep(5_000);
        return { valid: true, checked: 0 };
      },
    });
    await server.start();
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    const call = client.request('wallet.audit.verify', {}, { timeoutMs: 20_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await killConnections(vhost, 2);
    await assert.rejects(
      call.then((e) => Promise.reject(e)),
      (e: unknown) => {
        assert.ok(isFleetError(e, ErrorCode.UNAVAILABLE), String(e));
        assert.equal(e.retryable, true);
        return true;
      },
    );
  });
});
