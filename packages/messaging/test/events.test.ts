import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ErrorCode, Exchanges, FleetError, Headers } from '@wallet-fleet/contracts';
import { createLogger, runWithContext } from '@wallet-fleet/service-kit';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology, type HandlerContext } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, rawChannel, takeAll, text } from './support.js';

const topology = defineTopology({
  queues: [
    {
      name: 'prov.events',
      kind: 'events',
      bindings: [
        { exchange: Exchanges.events, pattern: 'kyc.approved' },
        { exchange: Exchanges.events, pattern: 'wallet.created' },
        { exchange: Exchanges.events, pattern: 'wallet.provisioning.completed' },
      ],
      retry: { maxAttempts: 3, initialDelayMs: 60, maxDelayMs: 10_000, factor: 4, jitter: 0 },
    },
  ],
  delayTiers: [60, 240, 1000],
});

async function dlq(vhost: TestVhost, n: number) {
  await waitFor(async () => (await depth(vhost, 'prov.events.dlq')) >= n, { what: `${n} dead letters` });
  return takeAll(vhost, 'prov.events.dlq');
}

describe('messaging: event consumers', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should dead-letter malformed JSON and schema violations with the reason, never calling the handler', async () => {
    const b = broker(vhost, topology);
    let called = 0;
    b.handleEvents('prov.events', { 'kyc.approved': async () => void called++ });
    await b.start();
    const ch = await rawChannel(vhost);
    ch.publish(Exchanges.events, 'kyc.approved', Buffer.from('{not json'), { messageId: 'm-json', userId: vhost.user });
    ch.publish(Exchanges.events, 'kyc.approved', Buffer.from(JSON.stringify({ userId: '', chains: ['BTC'] })), { messageId: 'm-schema', userId: vhost.user });
    const dead = await dlq(vhost, 2);
    const byId = new Map(dead.map((m) => [m.properties.messageId as string, m]));
    const json = byId.get('m-json')!.properties.headers!;
    assert.equal(text(json[Headers.deathReason]), 'malformed_json');
    assert.equal(text(json[Headers.errorCode]), ErrorCode.VALIDATION_FAILED);
    const schema = byId.get('m-schema')!.properties.headers!;
    assert.equal(text(schema[Headers.deathReason]), 'validation');
    assert.match(text(schema[Headers.errorMessage]), /userId: .*; chains\.0: /, 'every failing field is named');
    assert.equal(text(schema[Headers.originalQueue]), 'prov.events');
    assert.equal(text(schema[Headers.originalRoutingKey]), 'kyc.approved');
    assert.equal(byId.get('m-schema')!.content.toString(), JSON.stringify({ userId: '', chains: ['BTC'] }), 'body kept as it came');
    assert.equal(called, 0);
    assert.equal(await depth(vhost, 'prov.events'), 0);
  });

  it('should dead-letter an event the queue has no handler for (no_handler)', async () => {
    const b = broker(vhost, topology);
    b.handleEvents('prov.events', { 'kyc.approved': async () => undefined });
    await b.start();
    await b.publishEvent('wallet.provisioning.completed', { userId: 'u1', wallets: [] });
    const [m] = await dlq(vhost, 1);
    assert.equal(text(m!.properties.headers![Headers.deathReason]), 'no_handler');
    assert.equal(text(m!.properties.headers![Headers.errorCode]), ErrorCode.UNKNOWN_OPERATION);
  });

  it('should retry a retryable failure with growing broker-side delays, then dead-letter it with its history', async () => {
    const b = broker(vhost, topology);
    const attempts: Array<{ attempt: number; at: number }> = [];
    b.handleEvents('prov.events', {
      'kyc.approved': async (_input, ctx) => {
        attempts.push({ attempt: ctx.attempt, at: Date.now() });
        throw FleetError.retryable(ErrorCode.UNAVAILABLE, `kms down (try ${ctx.attempt})`);
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-retry' }, { messageId: 'm-retry' });
    const [m] = await dlq(vhost, 1);
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [1, 2, 3],
    );
    // Lower bounds only: the delay queue cannot hand a message back before its TTL.
    assert.ok(attempts[1]!.at - attempts[0]!.at >= 55, 'first delay is initialDelayMs');
    assert.ok(attempts[2]!.at - attempts[1]!.at >= 235, 'second delay grew by the factor');
    const h = m!.properties.headers!;
    assert.equal(m!.properties.messageId, 'm-retry');
    assert.equal(text(h[Headers.deathReason]), 'attempts_exhausted');
    assert.equal(text(h[Headers.originalRoutingKey]), 'kyc.approved');
    assert.equal(text(h[Headers.originalExchange]), Exchanges.events);
    const history = JSON.parse(text(h[Headers.errorHistory])) as Array<{ attempt: number; code: string; message: string; at: string }>;
    assert.deepEqual(
      history.map((e) => [e.attempt, e.code, e.message]),
      [
        [1, 'UNAVAILABLE', 'kms down (try 1)'],
        [2, 'UNAVAILABLE', 'kms down (try 2)'],
        [3, 'UNAVAILABLE', 'kms down (try 3)'],
      ],
    );
    assert.equal(await depth(vhost, 'prov.delay.60'), 0);
    assert.equal(await depth(vhost, 'prov.delay.240'), 0);
  });

  it('should wait longer between attempts when the failure asks for a longer backoff', async () => {
    const b = broker(vhost, topology);
    const attempts: number[] = [];
    b.handleEvents('prov.events', {
      'kyc.approved': async (_input, ctx) => {
        attempts.push(Date.now());
        if (ctx.attempt === 1) throw new FleetError(ErrorCode.UNAVAILABLE, 'rpc endpoint down', { retryable: true, retryDelayFactor: 5 });
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-slow' });
    await waitFor(() => attempts.length === 2, { what: 'the second attempt' });
    // 60 ms × 5 = 300 ms, in the nearest tier (240 ms): a plain retryable failure comes back after 60 ms (the test above).
    assert.ok(attempts[1]! - attempts[0]! >= 235, `waited ${attempts[1]! - attempts[0]!} ms`);
  });

  it('should succeed on a later attempt without dead-lettering', async () => {
    const b = broker(vhost, topology);
    const attempts: number[] = [];
    b.handleEvents('prov.events', {
      'kyc.approved': async (_input, ctx) => {
        attempts.push(ctx.attempt);
        if (ctx.attempt < 2) throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'not yet');
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-later' });
    await waitFor(() => attempts.length === 2, { what: 'second attempt' });
    await b.stop();
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(await depth(vhost, 'prov.events.dlq'), 0);
    assert.equal(await depth(vhost, 'prov.events'), 0);
  });

  it('should dead-letter a non-retryable failure at once, and treat a plain exception as INTERNAL non-retryable', async () => {
    const b = broker(vhost, topology);
    const calls: string[] = [];
    b.handleEvents('prov.events', {
      'kyc.approved': async (input) => {
        calls.push(input.userId);
        if (input.userId === 'u-fleet') throw FleetError.nonRetryable(ErrorCode.INSUFFICIENT_FUNDS, 'no money');
        throw new TypeError('cannot read properties of undefined');
      },
    });
    await b.start();
    await b.publishEvent('kyc.approved', { userId: 'u-fleet' }, { messageId: 'm-fleet' });
    await b.publishEvent('kyc.approved', { userId: 'u-plain' }, { messageId: 'm-plain' });
    const dead = await dlq(vhost, 2);
    const byId = new Map(dead.map((m) => [m.properties.messageId as string, m.properties.headers!]));
    assert.equal(text(byId.get('m-fleet')![Headers.deathReason]), 'non_retryable');
    assert.equal(text(byId.get('m-fleet')![Headers.errorCode]), ErrorCode.INSUFFICIENT_FUNDS);
    assert.equal(text(byId.get('m-plain')![Headers.deathReason]), 'non_retryable');
    assert.equal(text(byId.get('m-plain')![Headers.errorCode]), ErrorCode.INTERNAL);
    assert.deepEqual(calls.sort(), ['u-fleet', 'u-plain'], 'each handled exactly once');
  });

  it('should carry the correlation id and trace into handlers, their log lines and what they publish', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    const logger = createLogger({ service: 'trace-test', level: 'info', destination: sink });
    const b = broker(vhost, topology, { logger });
    const seen: Record<string, HandlerContext> = {};
    b.handleEvents('prov.events', {
      'kyc.approved': async (input, ctx) => {
        seen.kyc = ctx;
        ctx.logger.info('provisioning');
        await ctx.publishEvent('wallet.provisioning.completed', { userId: input.userId, wallets: [] });
      },
      'wallet.provisioning.completed': async (_input, ctx) => {
        seen.done = ctx;
      },
    });
    await b.start();
    const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await runWithContext({ correlationId: 'corr-42', traceparent: parent }, () => b.publishEvent('kyc.approved', { userId: 'u-trace' }));
    await waitFor(() => seen.done, { what: 'the follow-up event' });
    assert.equal(seen.kyc!.correlationId, 'corr-42');
    assert.equal(seen.done!.correlationId, 'corr-42', 'a publish inside a handler keeps the correlation id');
    const traceId = (tp: string) => tp.split('-')[1];
    assert.equal(traceId(seen.kyc!.traceparent), '0af7651916cd43dd8448eb211c80319c');
    assert.equal(traceId(seen.done!.traceparent), '0af7651916cd43dd8448eb211c80319c');
    assert.notEqual(seen.kyc!.traceparent, parent, 'the handler runs in a child span');
    const line = lines.find((l) => l.msg === 'provisioning');
    assert.equal(line?.correlationId, 'corr-42');
    assert.equal(line?.traceparent, seen.kyc!.traceparent);
    assert.equal(line?.routingKey, 'kyc.approved');
  });
});
