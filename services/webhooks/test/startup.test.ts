import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import { createWebhooksService } from '../src/app.js';
import { loadWebhooksConfig } from '../src/config.js';
import { deliver, newSecret, randomSolSignature, silent } from './support.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('webhooks startup: deliveries arriving while the service starts', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  before(async () => {
    vhost = await createFleetVhost('webhooks');
    schema = await createSchemaName('webhooks');
  });
  after(async () => {
    await vhost?.drop();
    await schema?.drop();
  });

  it('should answer 503 until it runs and start every time under a steady stream of deliveries', async () => {
    const { redisUrl } = await backingServices();
    const port = await freePort();
    const secret = newSecret();
    const target = { base: `http://127.0.0.1:${port}`, secret };
    const statuses = new Map<string, number>();
    let streaming = true;
    const stream = async () => {
      while (streaming) {
        let outcome: string;
        try {
          outcome = String(
            (
              await deliver(target, {
                body: { chain: 'SOL', txHash: randomSolSignature(), token: 'native', amount: '1', toAddress: '9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin' },
              })
            ).status,
          );
        } catch {
          outcome = 'refused'; // between two processes nothing listens
          await new Promise((r) => setImmediate(r));
        }
        statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
      }
    };
    const streams = Array.from({ length: 4 }, stream);
    try {
      for (let i = 0; i < 5; i++) {
        const service = createWebhooksService(
          loadWebhooksConfig({
            FLEET_DEV_MODE: 'true',
            AMQP_URL: vhost.as('webhooks'),
            ...schema.env,
            REDIS_URL: redisUrl,
            HTTP_PORT: String(port),
            LOG_LEVEL: 'silent',
            WEBHOOK_SECRETS: secret,
          }),
          silent,
        );
        const before = statuses.get('200') ?? 0;
        await service.start(); // rejected before the fix: the limiter had connected Redis behind its component
        await waitFor(() => (statuses.get('200') ?? 0) > before, { what: `a delivery accepted after start ${i + 1}` });
        await service.stop();
      }
    } finally {
      streaming = false;
      await Promise.all(streams);
    }
    assert.deepEqual(
      [...statuses.keys()].filter((s) => !['200', '503', 'refused'].includes(s)),
      [],
    );
    assert.ok((statuses.get('503') ?? 0) > 0, `deliveries arrived while starting: ${JSON.stringify([...statuses])}`);
  });
});
