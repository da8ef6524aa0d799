// A broker resource alarm seen from outside (issue 14): the webhooks service on a RabbitMQ node of
// its own (a memory alarm on the machine's node would block every suite), holding the fleet's
// definitions. While RabbitMQ blocks publishing, deposit webhooks are answered 503 (the sender
// retries) within the publish bound instead of hanging, /ready is 503 and /live stays 200; once the
// alarm clears the same process takes deliveries again. packages/messaging/test/alarm.test.ts covers
// the runtime itself.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { backingServices, createSchemaName, importDefinitions, type RabbitNode, startScratchNode, type TestSchema, waitFor } from '@wallet-fleet/testing';
import { deliver } from '../../services/webhooks/test/support.js';
import { type ServiceProcess, startService } from './support/service-process.js';

const DEFINITIONS = fileURLToPath(new URL('../../infra/rabbitmq/definitions.json', import.meta.url));
const secret = `whsec_${randomBytes(32).toString('base64')}`;
const deposit = () => ({
  chain: 'ETH',
  txHash: `0x${randomBytes(32).toString('hex')}`,
  token: 'native',
  amount: '1000',
  toAddress: `0x${randomBytes(20).toString('hex')}`,
});

describe('webhooks under a broker memory alarm (scratch node)', function () {
  this.timeout(180_000);
  let node: RabbitNode | undefined;
  let schema: TestSchema | undefined;
  let webhooks: ServiceProcess | undefined;

  before(async function () {
    this.timeout(120_000);
    node = await startScratchNode('wfwebhooksalarm');
    await importDefinitions(node, DEFINITIONS);
    schema = await createSchemaName('webhooks_alarm');
    const { redisUrl } = await backingServices();
    webhooks = await startService(
      'webhooks',
      {
        AMQP_URL: node.url.replace('guest:guest', 'webhooks:webhooks'),
        ...schema.env,
        REDIS_URL: redisUrl,
        LOG_LEVEL: 'warn',
        WEBHOOK_SECRETS: secret,
        EVM_RPC_URL: 'http://127.0.0.1:9',
        SOLANA_RPC_URL: 'http://127.0.0.1:9',
      },
      { readyTimeoutMs: 60_000 },
    );
  });
  after(async function () {
    this.timeout(60_000);
    await node?.ctl('set_vm_memory_high_watermark', '0.4').catch(() => undefined);
    await webhooks?.stop();
    await schema?.drop();
    await node?.stop();
  });

  it('should answer 503 within its bound and fail readiness while publishing is blocked, and take deliveries again once the alarm clears', async () => {
    const h = { base: webhooks!.url(''), secret };
    const before = await deliver(h, { body: deposit() });
    assert.equal(before.status, 200, JSON.stringify(before.body));
    const pid = webhooks!.child.pid;

    await node!.ctl('set_vm_memory_high_watermark', '0.0001');
    const during = { body: deposit(), id: `msg_${randomBytes(8).toString('hex')}` };
    try {
      // The first publish is what makes RabbitMQ block the connection: it waits at most the confirm bound.
      const t0 = Date.now();
      const first = await deliver(h, during);
      assert.equal(first.status, 503, JSON.stringify(first.body));
      assert.ok(Date.now() - t0 < 20_000, `answered after ${Date.now() - t0} ms`);
      await waitFor(async () => (await fetch(webhooks!.url('/ready'))).status === 503, { timeoutMs: 20_000, what: '/ready to answer 503' });
      assert.equal((await fetch(webhooks!.url('/live'))).status, 200, 'alive: nothing to restart');
      // Blocked and known to be: refused at once.
      const t1 = Date.now();
      const next = await deliver(h, { body: deposit() });
      assert.equal(next.status, 503, JSON.stringify(next.body));
      assert.ok(Date.now() - t1 < 2000, `refused after ${Date.now() - t1} ms, not at once`);
    } finally {
      await node!.ctl('set_vm_memory_high_watermark', '0.4');
    }
    await waitFor(async () => (await fetch(webhooks!.url('/ready'))).status === 200, { timeoutMs: 30_000, what: '/ready 200 again' });
    // The sender's retry of the refused delivery is accepted, and so is a new one.
    const retried = await deliver(h, during);
    assert.equal(retried.status, 200, JSON.stringify(retried.body));
    const fresh = await deliver(h, { body: deposit() });
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(webhooks!.child.pid, pid);
    assert.equal(webhooks!.child.exitCode, null);
  });
});
