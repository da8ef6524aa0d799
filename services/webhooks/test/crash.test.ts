import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Anvil, startAnvil } from '@wallet-fleet/dev-runtimes';
import { type Broker, createBroker, defineTopology } from '@wallet-fleet/messaging';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import pg from 'pg';
import { deliver, newSecret, silent } from './support.js';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
// anvil's dev accounts are unlocked: eth_sendTransaction from the first one needs no signing here.
const FUNDED = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266';
const TO = '0x000000000000000000000000000000000000dEaD';

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

/** Sends `n` transfers of 1..n wei to TO, one at a time (anvil mines each at once); returns their hashes. */
async function sendTransfers(url: string, n: number): Promise<string[]> {
  const hashes: string[] = [];
  for (let i = 0; i < n; i++) {
    const body = { jsonrpc: '2.0', id: i, method: 'eth_sendTransaction', params: [{ from: FUNDED, to: TO, value: `0x${(i + 1).toString(16)}` }] };
    const r = (await (await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as {
      result?: string;
      error?: { message: string };
    };
    if (!r.result) throw new Error(`anvil refused a transfer: ${r.error?.message}`);
    hashes.push(r.result);
  }
  return hashes;
}

describe('webhooks: kill -9 during a burst of deliveries', function () {
  this.timeout(240_000);
  let anvil: Anvil;
  let vhost: TestVhost;
  let schema: TestSchema;
  let db: pg.Pool;
  let client: Broker;
  let child: ChildProcess | undefined;
  const secret = newSecret();
  let port: number;
  let env: NodeJS.ProcessEnv;

  async function startChild(): Promise<void> {
    child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined);
        return res?.status === 200;
      },
      { timeoutMs: 30_000, what: 'webhooks process ready' },
    );
  }

  before(async () => {
    const { databaseUrl, redisUrl } = await backingServices();
    anvil = await startAnvil({ port: 0 });
    vhost = await createFleetVhost('webhooks');
    schema = await createSchemaName('webhooks');
    port = await freePort();
    env = {
      PATH: process.env.PATH,
      AMQP_URL: vhost.as('webhooks'),
      ...schema.env,
      REDIS_URL: redisUrl,
      HTTP_PORT: String(port),
      LOG_LEVEL: 'error',
      WEBHOOK_SECRETS: secret,
      // anvil over plain http: development mode (see .mocharc.cjs).
      FLEET_DEV_MODE: 'true',
      EVM_RPC_URL: anvil.url,
      EVM_FINALITY: '1',
      DEPOSIT_RETRY_INITIAL_MS: '10',
      DEPOSIT_RETRY_MAX_MS: '100',
      SHUTDOWN_TIMEOUT_MS: '2000',
    };
    db = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema.schema}` });
    await startChild();
    // Announces the wallet as the wallet service does.
    client = createBroker({ url: vhost.as('wallet'), service: 'test-wallet', logger: silent, topology: defineTopology({ queues: [] }) });
    await client.start();
    await client.publishEvent('wallet.created', {
      walletId: randomUUID(),
      userId: 'u-crash',
      chain: 'ETH',
      address: TO,
      label: null,
      isActive: true,
      createdAt: new Date().toISOString(),
    });
    await waitFor(async () => (await db.query('SELECT 1 FROM known_addresses')).rowCount === 1, { what: 'wallet registered' });
  });

  after(async () => {
    child?.kill('SIGKILL');
    await client?.stop();
    await db?.end();
    await anvil?.stop();
    await vhost?.drop();
    await schema?.drop();
  });

  it('should credit every delivery answered 200 exactly once after a kill -9 mid-burst and a restart', async () => {
    const unique = 1400;
    const duplicates = 600;
    const hashes = await sendTransfers(anvil.url, unique);
    // 2,000 deliveries: every deposit once plus 600 duplicates (30 %), shuffled.
    const bodies = hashes.map((txHash, i) => ({ chain: 'ETH', txHash, token: 'native', amount: String(i + 1), toAddress: TO }));
    const deliveries = [...bodies, ...Array.from({ length: duplicates }, (_, i) => bodies[(i * 7) % unique]!)];
    for (let i = deliveries.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
    }
    const base = `http://127.0.0.1:${port}`;
    const accepted = new Map<string, string>();
    const refused: typeof bodies = [];
    let next = 0;
    let answered = 0;
    const statuses: Record<number, number> = {};
    const killAt = 400;
    const worker = async () => {
      while (next < deliveries.length) {
        const body = deliveries[next++]!;
        const res = await deliver({ base, secret }, { body }).catch(() => ({ status: 0, body: undefined }));
        answered += 1;
        if (answered === killAt) child!.kill('SIGKILL');
        if (res.status === 200) {
          const known = accepted.get(body.txHash);
          if (known) assert.equal(res.body.jobId, known, 'a duplicate answered with another job id');
          accepted.set(body.txHash, res.body.jobId);
        } else {
          refused.push(body);
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    assert.ok(
      accepted.size >= 100 && refused.length > 0,
      `the kill landed mid-burst (${accepted.size} accepted, ${refused.length} refused: ${JSON.stringify(statuses)})`,
    );

    await startChild();
    const credited = async () =>
      (await db.query<{ tx_hash: string; n: string }>('SELECT d.tx_hash, count(l.*) AS n FROM deposits d JOIN ledger l USING (deposit_id) GROUP BY d.tx_hash'))
        .rows;
    try {
      await waitFor(async () => (await credited()).filter((r) => accepted.has(r.tx_hash)).length === accepted.size, {
        timeoutMs: 90_000,
        intervalMs: 200,
        what: 'every accepted deposit credited',
      });
    } catch (e) {
      const s = await db.query(`SELECT status, count(*) AS n, max(attempts::text) AS a FROM deposits GROUP BY status`);
      const o = await db.query(`SELECT count(*) AS n FROM outbox`);
      throw new Error(`${String(e)} ${JSON.stringify(s.rows)} outbox=${o.rows[0].n} accepted=${accepted.size}`);
    }
    // The senders retry what was not answered 200: afterwards every deposit is credited, each once.
    let k = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (k < refused.length) {
          const body = refused[k++]!;
          assert.equal((await deliver({ base, secret }, { body })).status, 200);
        }
      }),
    );
    await waitFor(async () => (await credited()).length === unique, { timeoutMs: 120_000, intervalMs: 250, what: 'every deposit credited' });
    const rows = await credited();
    assert.deepEqual(new Set(rows.map((r) => r.n)), new Set(['1']));
    const total = await db.query<{ sum: string; n: string }>('SELECT sum(amount)::text AS sum, count(*)::text AS n FROM ledger');
    assert.equal(total.rows[0]!.n, String(unique));
    assert.equal(total.rows[0]!.sum, String((unique * (unique + 1)) / 2));
  });
});
