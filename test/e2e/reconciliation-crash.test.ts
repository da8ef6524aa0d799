// A reconciliation process killed with SIGKILL in the middle of a pass: the pass lock is not kept
// by the dead process, the next replica runs at once, and the dead pass's run is marked abandoned.
import assert from 'node:assert/strict';
import { backingServices, createSchemaName, createVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { type ServiceProcess, startService } from './support/service-process.js';

describe('reconciliation process killed mid-pass', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let conn: amqp.ChannelModel;
  let db: pg.Pool;
  const procs: ServiceProcess[] = [];

  before(async () => {
    vhost = await createVhost('recon-crash');
    schema = await createSchemaName('recon_crash');
    db = new pg.Pool({ connectionString: (await backingServices()).databaseUrl, options: `-c search_path=${schema.schema}` });
    // Requests for the deposit operations go to a queue nobody consumes: a pass waits on its first
    // request (as it would on a webhooks service that hangs), so it is mid-way when killed.
    conn = await amqp.connect(vhost.url);
    const ch = await conn.createChannel();
    await ch.assertExchange('wallet.commands', 'topic', { durable: true });
    await ch.assertQueue('test.blackhole', { durable: false, autoDelete: true });
    await ch.bindQueue('test.blackhole', 'wallet.commands', 'wallet.deposits.#');
  });

  after(async () => {
    for (const p of procs) {
      p.kill('SIGKILL');
      await p.exited;
    }
    await conn?.close().catch(() => undefined);
    await db?.end();
    await vhost?.drop();
    await schema?.drop();
  });

  it('should let the next replica run at once and mark the dead pass abandoned', async () => {
    const { databaseUrl } = await backingServices();
    const env = {
      AMQP_URL: vhost.url,
      DATABASE_URL: databaseUrl,
      DATABASE_SCHEMA: schema.schema,
      LOG_LEVEL: 'warn',
      RECONCILE_INITIAL_DELAY_MS: '3600000',
      RECONCILE_REQUEST_TIMEOUT_MS: '2000',
      OUTBOX_SCHEMAS: '',
    };
    const first = await startService('reconciliation', env);
    procs.push(first);
    // The pass starts and hangs on its request: its run row says running.
    void fetch(first.url('/runs'), { method: 'POST' }).catch(() => undefined);
    await waitFor(async () => (await db.query(`SELECT 1 FROM reconciliation_runs WHERE status = 'running'`)).rowCount === 1, { what: 'a pass under way' });
    first.kill('SIGKILL');
    assert.equal(await first.exited, 'SIGKILL');

    const second = await startService('reconciliation', env);
    procs.push(second);
    const res = await fetch(second.url('/runs'), { method: 'POST' });
    assert.equal(res.status, 200, 'not skipped: the dead holder does not keep the lock');
    const body = (await res.json()) as { outcome: string; runId: string; report: { deposits: { error?: string } } };
    // The operations still get no answer (nobody consumes them): the pass ran and says so.
    assert.deepEqual([body.outcome, body.report.deposits.error], ['failed', 'TIMEOUT']);
    const runs = (await db.query(`SELECT run_id, status FROM reconciliation_runs ORDER BY started_at`)).rows;
    assert.deepEqual(
      runs.map((r) => r.status),
      ['abandoned', 'failed'],
    );
    assert.equal(runs[1].run_id, body.runId);
  });
});
