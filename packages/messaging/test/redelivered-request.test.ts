import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ErrorCode, Exchanges, FleetError, isFleetError } from '@wallet-fleet/contracts';
import { waitFor, type TestVhost } from '@wallet-fleet/testing';
import { defineTopology, type Broker } from '@wallet-fleet/messaging';
import { broker, depth, eachTestInFreshVhost, rawChannel } from './support.js';

const topology = defineTopology({
  queues: [{ name: 'wallet.requests', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.#' }] }],
});

const walletId = randomUUID();

describe('messaging: a redelivered request', () => {
  let vhost: TestVhost;
  eachTestInFreshVhost((v) => (vhost = v));

  /**
   * Sends `call` from a client; a first consumer takes the request and dies before answering (its
   * channel closes: the broker redelivers it, marked redelivered); then the service starts.
   */
  async function redelivered<T>(call: (client: Broker) => Promise<T>, runs: string[]): Promise<T | unknown> {
    const client = broker(vhost, defineTopology({ queues: [] }));
    await client.start();
    const server = broker(vhost, topology);
    server.handleCommands('wallet.requests', {
      'wallet.transaction.sign': async () => {
        runs.push('sign');
        return { signedTransaction: 'signed' };
      },
      // Both answer what the handler decided, so the reply shows that it ran.
      'wallet.transaction.transferSol': async () => {
        runs.push('transferSol');
        throw new FleetError(ErrorCode.WALLET_NOT_FOUND, 'no such wallet');
      },
      'wallet.management.get': async () => {
        runs.push('get');
        throw new FleetError(ErrorCode.WALLET_NOT_FOUND, 'no such wallet');
      },
    });
    // Declares the queue; stopped before its consumer takes anything.
    const declarer = broker(vhost, topology);
    await declarer.start();
    await declarer.stop();
    const pending = call(client).then(
      (v) => v,
      (e: unknown) => e,
    );
    const ch = await rawChannel(vhost);
    await waitFor(async () => (await depth(vhost, 'wallet.requests')) === 1, { what: 'the request queued' });
    const first = await ch.get('wallet.requests', { noAck: false });
    assert.ok(first && !first.fields.redelivered);
    await ch.close(); // the first consumer dies: the request goes back, redelivered
    await server.start();
    return pending;
  }

  it('should answer OUTCOME_UNKNOWN, without running it again, to an operation that is not idempotent', async () => {
    const runs: string[] = [];
    const outcome = await redelivered(
      (c) => c.request('wallet.transaction.sign', { userId: 'u-1', walletId, transaction: 'AAAA' }, { timeoutMs: 15_000 }),
      runs,
    );
    assert.ok(isFleetError(outcome, ErrorCode.OUTCOME_UNKNOWN), String(outcome));
    assert.equal((outcome as { retryable: boolean }).retryable, false);
    assert.deepEqual(runs, []);
    assert.equal(await depth(vhost, 'wallet.requests'), 0);
  });

  it('should run it again when the request carries its idempotency key (the handler dedupes on it)', async () => {
    const runs: string[] = [];
    const outcome = await redelivered(
      (c) =>
        c.request(
          'wallet.transaction.transferSol',
          { userId: 'u-1', walletId, recipient: 'So11111111111111111111111111111111111111112', amount: '1', idempotencyKey: 'pay-1' },
          { timeoutMs: 15_000 },
        ),
      runs,
    );
    assert.ok(isFleetError(outcome, ErrorCode.WALLET_NOT_FOUND), String(outcome));
    assert.deepEqual(runs, ['transferSol']);
  });

  it('should run an idempotent operation (catalogue) again', async () => {
    const runs: string[] = [];
    const outcome = await redelivered((c) => c.request('wallet.management.get', { userId: 'u-1', walletId }, { timeoutMs: 15_000 }), runs);
    assert.ok(isFleetError(outcome, ErrorCode.WALLET_NOT_FOUND), String(outcome));
    assert.deepEqual(runs, ['get']);
  });
});
