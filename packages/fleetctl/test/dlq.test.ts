// fleetctl dlq … as an operator runs it: a separate process against the real broker, one vhost per
// test, with consumers of packages/messaging playing the services.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ErrorCode, Exchanges, FleetError, Headers, type AuditEvent } from '@wallet-fleet/contracts';
import { defineTopology } from '@wallet-fleet/messaging';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import type { DeadLetter, ReplayReport } from '../src/dlq.js';
import { broker, cleanup, depth, fleetctl, fleetctlJson, freshVhost, rawChannel } from './support.js';

// Two services consume the same audit events: `sink` fails until its dependency is fixed, `other`
// always succeeds. A replay must reach `sink` again and never `other`.
const topology = defineTopology({
  queues: [
    {
      name: 'sink.events',
      kind: 'events',
      bindings: [{ exchange: Exchanges.events, pattern: 'audit.#' }],
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 20 },
    },
    { name: 'other.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'audit.#' }] },
  ],
});

const event = (): AuditEvent => ({
  eventId: randomUUID(),
  occurredAt: new Date().toISOString(),
  actor: { type: 'service', id: 'wallet' },
  action: 'wallet.create',
  resource: { type: 'wallet', id: randomUUID() },
  status: 'success',
});

/** The two consumers; `sink` fails (its dependency is down: retried, then dead-lettered) until `fix()` is called. */
async function startServices(vhost: TestVhost) {
  let fixed = false;
  const sink: Array<{ eventId: string; attempt: number }> = [];
  const other: string[] = [];
  const sinkHeaders: Array<Record<string, unknown>> = [];
  const b = broker(vhost, topology);
  b.handleEvents('sink.events', {
    'audit.#': async (e, ctx) => {
      if (!fixed) throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'ledger database down');
      sink.push({ eventId: e.eventId, attempt: ctx.attempt });
      sinkHeaders.push(ctx.headers);
    },
  });
  b.handleEvents('other.events', { 'audit.#': async (e) => void other.push(e.eventId) });
  await b.start();
  return {
    broker: b,
    sink,
    sinkHeaders,
    other,
    fix: () => (fixed = true),
    /** Publishes events (message id = event id) and waits until each is dead-lettered by `sink` and done by `other`. */
    async poison(n: number): Promise<string[]> {
      const ids = Array.from({ length: n }, () => event());
      for (const e of ids) await b.publishEvent('audit.wallet.create', e, { messageId: e.eventId });
      await waitFor(async () => (await depth(vhost, 'sink.events.dlq')) === n, { what: `${n} event(s) in sink.events.dlq` });
      await waitFor(() => other.length === n, { what: 'the other consumer done' });
      return ids.map((e) => e.eventId);
    },
  };
}

/**
 * The DLQ commands run with the owning service's broker credentials (here the test's user, which
 * plays the service): a consumer trusts a message arriving through the default exchange only under
 * its own user, and the `ops` user may not read a service's queues (docs/operations.md).
 */
const asOwner = (vhost: TestVhost) => ({ AMQP_URL: vhost.url });

describe('fleetctl dlq', () => {
  let vhost: TestVhost;
  beforeEach(async () => {
    vhost = await freshVhost();
  });
  afterEach(async () => {
    await cleanup();
    await vhost.drop();
  });

  it('should list, peek and replay a poison message so that, once fixed, it is processed exactly once and leaves the DLQ', async () => {
    const svc = await startServices(vhost);
    const [id] = await svc.poison(1);

    const listed = await fleetctlJson<Array<{ dlq: string; messages: number }>>(vhost, ['dlq', 'list'], 0, asOwner(vhost));
    // The fleet's own event queues are declared ahead by the definitions of this vhost; these are the test's.
    assert.deepEqual(
      listed.filter((l) => /^(other|sink)\./.test(l.dlq)),
      [
        { dlq: 'other.events.dlq', messages: 0 },
        { dlq: 'sink.events.dlq', messages: 1 },
      ],
    );

    const peeked = await fleetctlJson<{ total: number; messages: DeadLetter[] }>(vhost, ['dlq', 'peek', 'sink.events'], 0, asOwner(vhost));
    assert.equal(peeked.total, 1);
    const [dead] = peeked.messages;
    assert.equal(dead!.messageId, id);
    assert.equal(dead!.routingKey, 'audit.wallet.create');
    assert.equal(dead!.reason, 'attempts_exhausted');
    assert.equal(dead!.errorCode, ErrorCode.UNAVAILABLE);
    assert.equal(dead!.attempt, 2);
    assert.equal(dead!.history.length, 2);
    assert.equal((dead!.body as AuditEvent).eventId, id);
    const human = await fleetctl(vhost, ['dlq', 'peek', 'sink.events.dlq'], asOwner(vhost));
    assert.equal(human.code, 0);
    assert.match(human.stdout, new RegExp(`${id}\\s+audit\\.wallet\\.create\\s+attempts_exhausted\\s+2`));
    assert.equal(await depth(vhost, 'sink.events.dlq'), 1, 'peeking leaves the message where it is');

    svc.fix();
    const replay = await fleetctl(vhost, ['dlq', 'replay', 'sink.events', '--all'], { ...asOwner(vhost), FLEETCTL_PROGRESS_MS: '0' });
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(replay.stderr, 'replayed 1 of 1 from sink.events.dlq\n', 'progress on stderr (here after every message)');
    assert.match(replay.stdout, /replayed 1 message\(s\) from sink\.events\.dlq to sink\.events/);

    await waitFor(() => svc.sink.length === 1, { what: 'the replayed event processed' });
    // stop() waits for every running handler: a second copy would be counted or left in a queue.
    await svc.broker.stop();
    assert.deepEqual(svc.sink, [{ eventId: id, attempt: 1 }], 'processed once, with its attempt count reset');
    assert.deepEqual(svc.other, [id], 'the other consumer of the same routing key did not get it again');
    const h = svc.sinkHeaders[0]!;
    const present = (k: string) => h[k] !== undefined;
    assert.deepEqual(
      ['x-death-reason', 'x-error-code', 'x-error-message', 'x-delivery-count', 'x-error-history', 'x-original-routing-key'].filter(present),
      ['x-error-history', 'x-original-routing-key'],
      'the last failure and the DLQ redeliveries of peeking are not carried over; the error trail is',
    );
    assert.equal(await depth(vhost, 'sink.events.dlq'), 0);
    assert.equal(await depth(vhost, 'sink.events'), 0);
  });

  it('should replay with --id only the messages named, leaving the others in the DLQ in place', async () => {
    const svc = await startServices(vhost);
    const ids = await svc.poison(3);
    svc.fix();

    const r = await fleetctlJson<ReplayReport>(vhost, ['dlq', 'replay', 'sink.events', '--id', ids[1]!], 0, asOwner(vhost));
    assert.deepEqual(r.replayed, [ids[1]]);
    await waitFor(() => svc.sink.length === 1, { what: 'the chosen event processed' });
    assert.deepEqual(
      svc.sink.map((s) => s.eventId),
      [ids[1]],
    );

    const left = await fleetctlJson<{ messages: DeadLetter[] }>(vhost, ['dlq', 'peek', 'sink.events', '-n', '10'], 0, asOwner(vhost));
    assert.deepEqual(left.messages.map((m) => m.messageId).sort(), [ids[0], ids[2]].sort());

    const missing = randomUUID();
    const none = await fleetctl(vhost, ['dlq', 'replay', 'sink.events', '--id', missing], asOwner(vhost));
    assert.equal(none.code, 1, 'an id that is not there is a failure');
    assert.match(none.stdout, new RegExp(`not in sink\\.events\\.dlq: ${missing}`));
    assert.equal(await depth(vhost, 'sink.events.dlq'), 2);
  });

  it('should purge only with --yes', async () => {
    const svc = await startServices(vhost);
    await svc.poison(2);

    const refused = await fleetctl(vhost, ['dlq', 'purge', 'sink.events'], asOwner(vhost));
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /deletes the 2 message\(s\) of sink\.events\.dlq for good; add --yes/);
    assert.equal(await depth(vhost, 'sink.events.dlq'), 2);

    const done = await fleetctlJson<{ purged: number }>(vhost, ['dlq', 'purge', 'sink.events', '--yes'], 0, asOwner(vhost));
    assert.equal(done.purged, 2);
    assert.equal(await depth(vhost, 'sink.events.dlq'), 0);
  });

  it('should keep the message in the DLQ when its copy is not taken (the work queue is gone)', async () => {
    // A DLQ whose work queue was deleted: the mandatory publish comes back unrouted.
    const ch = await rawChannel(vhost);
    await ch.assertQueue('gone.events.dlq', { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    const id = randomUUID();
    ch.sendToQueue('gone.events.dlq', Buffer.from(JSON.stringify(event())), {
      messageId: id,
      persistent: true,
      headers: { [Headers.originalRoutingKey]: 'audit.wallet.create', [Headers.deathReason]: 'non_retryable', [Headers.attempt]: 1 },
    });
    await ch.waitForConfirms();

    const r = await fleetctl(vhost, ['dlq', 'replay', 'gone.events', '--all'], asOwner(vhost));
    assert.equal(r.code, 1);
    assert.match(r.stdout, /replayed 0 message\(s\)/);
    assert.match(r.stdout, new RegExp(`stopped: gone\\.events did not take the copy.*${id} and the rest stay in gone\\.events\\.dlq`));
    const left = await fleetctlJson<{ messages: DeadLetter[] }>(vhost, ['dlq', 'peek', 'gone.events'], 0, asOwner(vhost));
    assert.deepEqual(
      left.messages.map((m) => [m.messageId, m.reason]),
      [[id, 'non_retryable']],
      'the same message, unchanged',
    );
  });

  it('should replay a message RabbitMQ dead-lettered itself (x-death only) under its original routing key', async () => {
    const svc = await startServices(vhost);
    svc.fix();
    // What the broker writes when a message passes the delivery limit: x-death, no x-original-*.
    const ch = await rawChannel(vhost);
    const e = event();
    ch.sendToQueue('sink.events.dlq', Buffer.from(JSON.stringify(e)), {
      messageId: e.eventId,
      persistent: true,
      headers: {
        'x-death': [
          {
            count: 1,
            reason: 'delivery_limit',
            queue: 'sink.events',
            time: { '!': 'timestamp', value: Math.floor(Date.now() / 1000) },
            exchange: Exchanges.events,
            'routing-keys': ['audit.wallet.create'],
          },
        ],
        'x-first-death-queue': 'sink.events',
        'x-first-death-reason': 'delivery_limit',
      },
    });
    await ch.waitForConfirms();

    const peeked = await fleetctlJson<{ messages: DeadLetter[] }>(vhost, ['dlq', 'peek', 'sink.events'], 0, asOwner(vhost));
    assert.deepEqual([peeked.messages[0]!.routingKey, peeked.messages[0]!.reason], ['audit.wallet.create', 'broker:delivery_limit']);

    const r = await fleetctlJson<ReplayReport>(vhost, ['dlq', 'replay', 'sink.events', '--all'], 0, asOwner(vhost));
    assert.deepEqual(r.replayed, [e.eventId]);
    await waitFor(() => svc.sink.length === 1, { what: 'the replayed event processed' });
    assert.deepEqual(svc.sink, [{ eventId: e.eventId, attempt: 1 }]);
    assert.equal(await depth(vhost, 'sink.events.dlq'), 0, 'not dead-lettered again as no_handler');
  });

  it('should refuse a replay that names no messages, and a DLQ that does not exist', async () => {
    const usage = await fleetctl(vhost, ['dlq', 'replay', 'sink.events'], asOwner(vhost));
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--id <messageId> \(repeatable\) or --all/);
    const missing = await fleetctl(vhost, ['dlq', 'peek', 'nothing.here'], asOwner(vhost));
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND: no queue nothing\.here\.dlq in this vhost/);
  });

  it("should replay into a fleet service's queue only with that service's credentials, whose copies its consumer believes", async () => {
    // wallet.requests as the wallet service declares it, with one dead-lettered request.
    const ch = await rawChannel(vhost);
    await ch.assertQueue('wallet.requests', { durable: true });
    await ch.assertQueue('wallet.requests.dlq', { durable: true });
    ch.sendToQueue('wallet.requests.dlq', Buffer.from('{"userId":"u-1","walletId":"w-1"}'), {
      messageId: 'dead-1',
      headers: { [Headers.originalRoutingKey]: 'wallet.management.get', [Headers.deathReason]: 'non_retryable' },
    });
    await ch.waitForConfirms();

    const asOps = await fleetctl(vhost, ['dlq', 'replay', 'wallet.requests', '--all']);
    assert.equal(asOps.code, 1);
    assert.match(asOps.stderr, /FORBIDDEN: .*wallet service's own broker user, not ops: run the replay with its credentials in AMQP_URL/);
    assert.deepEqual([await depth(vhost, 'wallet.requests.dlq'), await depth(vhost, 'wallet.requests')], [1, 0], 'nothing moved');

    const asWallet = await fleetctlJson<ReplayReport>(vhost, ['dlq', 'replay', 'wallet.requests', '--all'], 0, { AMQP_URL: vhost.as('wallet') });
    assert.deepEqual(asWallet.replayed, ['dead-1']);
    const [copy] = await waitFor(
      async () => {
        const m = await ch.get('wallet.requests', { noAck: true });
        return m ? [m] : undefined;
      },
      { what: 'the copy in wallet.requests' },
    );
    // What the wallet service's consumer checks: its own user, and the routing key it dispatches on.
    assert.equal(copy!.properties.userId, 'wallet');
    assert.equal(String(copy!.properties.headers![Headers.originalRoutingKey]), 'wallet.management.get');
  });
});
