import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ErrorCode, Exchanges, FleetError, Headers, type AuditEvent } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, takeAll, text } from './support.js';

const topology = defineTopology({
  queues: [
    {
      name: 'audit.events',
      kind: 'events',
      bindings: [{ exchange: Exchanges.events, pattern: 'audit.#' }],
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 },
    },
  ],
});

const audit = (action: string): AuditEvent => ({
  eventId: randomUUID(),
  occurredAt: new Date().toISOString(),
  actor: { type: 'service', id: 'wallet' },
  action,
  resource: { type: 'wallet', id: 'w1' },
  status: 'success',
});

describe('messaging: batch consumption', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should hand validated events over in batches of at most maxSize, failing single items on their own', async () => {
    const b = broker(vhost, topology);
    const sizes: number[] = [];
    const stored = new Set<string>();
    b.handleEventBatch(
      'audit.events',
      'audit.#',
      async (items) => {
        sizes.push(items.length);
        return items.map(({ input, ctx }) => {
          assert.ok(ctx.routingKey.startsWith('audit.wallet.'));
          if (input.action === 'poison') return FleetError.nonRetryable(ErrorCode.VALIDATION_FAILED, 'refused by the sink');
          stored.add(input.eventId);
          return undefined;
        });
      },
      { maxSize: 50, maxWaitMs: 20 },
    );
    await b.start();
    const good = Array.from({ length: 300 }, () => audit('wallet.create'));
    const poison = audit('poison');
    await Promise.all([...good, poison].map((e) => b.publishEvent(`audit.wallet.${e.action === 'poison' ? 'poison' : 'create'}`, e)));
    await waitFor(() => good.every((e) => stored.has(e.eventId)), { what: 'every good event stored' });
    await waitFor(async () => (await depth(vhost, 'audit.events.dlq')) === 1, { what: 'the poison event dead-lettered' });
    assert.ok(
      sizes.every((s) => s >= 1 && s <= 50),
      `batch sizes ${sizes.join(',')}`,
    );
    assert.ok(
      sizes.some((s) => s > 1),
      'messages were actually batched',
    );
    const [dead] = await takeAll(vhost, 'audit.events.dlq');
    assert.equal(JSON.parse(dead!.content.toString()).eventId, poison.eventId);
    assert.equal(text(dead!.properties.headers![Headers.deathReason]), 'non_retryable');
  });

  it('should retry the whole batch when the handler throws a retryable error', async () => {
    const b = broker(vhost, topology);
    const calls: Array<{ ids: string[]; attempts: number[] }> = [];
    b.handleEventBatch(
      'audit.events',
      'audit.#',
      async (items) => {
        calls.push({ ids: items.map((i) => i.input.eventId), attempts: items.map((i) => i.ctx.attempt) });
        if (calls.length === 1) throw FleetError.retryable(ErrorCode.UNAVAILABLE, 'database down');
        return items.map(() => undefined);
      },
      { maxSize: 10, maxWaitMs: 30 },
    );
    await b.start();
    const evs = Array.from({ length: 5 }, () => audit('wallet.create'));
    await Promise.all(evs.map((e) => b.publishEvent('audit.wallet.create', e)));
    await waitFor(() => calls.flatMap((c) => c.attempts).filter((a) => a === 2).length === calls[0]!.ids.length, { what: 'the failed batch retried' });
    const retried = new Set(calls.slice(1).flatMap((c) => c.ids));
    for (const id of calls[0]!.ids) assert.ok(retried.has(id), 'every item of the failed batch came back');
    await b.stop();
    assert.equal(await depth(vhost, 'audit.events.dlq'), 0);
  });
});
