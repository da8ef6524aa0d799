import assert from 'node:assert/strict';
import { DIRECT_REPLY_TO, Exchanges, Headers } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, rawChannel, sleep } from './support.js';

const topology = defineTopology({
  queues: [
    { name: 'kyc.events', kind: 'events', bindings: [{ exchange: Exchanges.events, pattern: 'kyc.approved' }] },
    { name: 'audit.commands', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.audit.verify' }] },
  ],
});

describe('messaging: x-deadline', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  it('should handle an event whatever x-deadline it carries: the deadline is a rule for requests', async () => {
    const b = broker(vhost, topology);
    const seen: string[] = [];
    b.handleEvents('kyc.events', {
      'kyc.approved': async (input, ctx) => {
        assert.equal(ctx.deadline, undefined);
        seen.push(input.userId);
      },
    });
    await b.start();
    const ch = await rawChannel(vhost);
    const body = (userId: string) => Buffer.from(JSON.stringify({ userId, chains: ['SOL'] }));
    ch.publish(Exchanges.events, 'kyc.approved', body('past'), {
      messageId: 'e-past',
      userId: vhost.user,
      headers: { [Headers.deadline]: Date.now() - 60_000 },
    });
    ch.publish(Exchanges.events, 'kyc.approved', body('none'), { messageId: 'e-none', userId: vhost.user });
    await waitFor(() => seen.length === 2, { what: 'both events handled' });
    assert.deepEqual(seen.sort(), ['none', 'past']);
    assert.equal(await depth(vhost, 'kyc.events.dlq'), 0);
  });

  it('should not abort a request whose x-deadline lies beyond what a Node timer can hold', async () => {
    const b = broker(vhost, topology);
    let aborted: boolean | undefined;
    b.handleCommands('audit.commands', {
      'wallet.audit.verify': async (_input, ctx) => {
        // Work that takes a while; an overflowing timer would have fired after 1 ms.
        await sleep(100);
        aborted = ctx.signal.aborted;
        return { valid: true, checked: 0 };
      },
    });
    await b.start();
    const ch = await rawChannel(vhost);
    const replies: string[] = [];
    await ch.consume(DIRECT_REPLY_TO, (m) => m && replies.push(m.content.toString()), { noAck: true });
    ch.publish(Exchanges.commands, 'wallet.audit.verify', Buffer.from('{}'), {
      correlationId: 'c-far',
      replyTo: DIRECT_REPLY_TO,
      userId: vhost.user,
      headers: { [Headers.deadline]: Date.now() + 10 * 365 * 24 * 3600 * 1000 },
    });
    await waitFor(() => replies.length === 1, { what: 'the reply' });
    assert.equal(aborted, false);
    assert.deepEqual(JSON.parse(replies[0]!), { ok: true, result: { valid: true, checked: 0 } });
  });
});
