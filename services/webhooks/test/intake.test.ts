import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { applyBrokerDefinitions, waitFor } from '@wallet-fleet/testing';
import { acceptEventId } from '../src/job-publisher.js';
import { deliver, type Harness, newSecret, randomSolSignature, startHarness } from './support.js';

const solDeposit = () => ({
  chain: 'SOL',
  txHash: randomSolSignature(),
  token: 'native',
  amount: '1500000',
  toAddress: '9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin',
});

describe('webhooks intake: POST /webhooks/deposits', function () {
  this.timeout(30_000);
  let h: Harness;
  const oldSecret = newSecret();
  const currentSecret = newSecret();

  before(async () => {
    h = await startHarness({ WEBHOOK_SECRETS: `${currentSecret},${oldSecret}`, WEBHOOK_MAX_BODY_BYTES: '2048' });
  });
  after(async () => {
    await h?.stop();
  });

  const jobs = async (txHash: string) => (await h.db.query('SELECT deposit_id FROM deposits WHERE tx_hash = $1', [txHash])).rows;

  it('should accept a delivery signed by a standardwebhooks client and answer with a job id once its message is published', async () => {
    const body = solDeposit();
    const res = await deliver(h, { body });
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'accepted');
    assert.match(res.body.jobId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(
      (await jobs(body.txHash)).map((r) => r.deposit_id),
      [res.body.jobId],
    );
    // Answered after the confirm, which is then recorded (nothing left for the republisher), and
    // with no outbox row on the way.
    await waitFor(async () => (await h.db.query('SELECT job_published FROM deposits WHERE deposit_id = $1', [res.body.jobId])).rows[0].job_published);
    const left = await h.db.query('SELECT 1 FROM outbox WHERE message_id = $1', [res.body.jobId]);
    assert.equal(left.rowCount, 0);
    const received = await waitFor(() => h.seen.find((m) => m.routingKey === 'deposit.received' && m.body.depositId === res.body.jobId));
    assert.equal(received.body.amount, '1500000');
    assert.equal(received.body.eventIndex, 0);
    const audit = await waitFor(() => h.seen.find((m) => m.routingKey === 'audit.webhooks.deposit.accept' && m.body.resource.id === res.body.jobId));
    assert.equal(audit.body.after.txHash, body.txHash);
  });

  it('should accept a delivery signed with the older of two rotating secrets', async () => {
    const res = await deliver(h, { body: solDeposit(), secret: oldSecret });
    assert.equal(res.status, 200);
  });

  it('should refuse with 401 a wrong secret, a tampered body, stale or future timestamps and missing headers, storing nothing', async () => {
    const body = solDeposit();
    const raw = JSON.stringify(body);
    const sixMinutes = 6 * 60_000;
    const attempts = [
      await deliver(h, { body, secret: newSecret() }),
      await deliver(h, { raw, headers: { 'webhook-signature': undefined } }),
      await deliver(h, { raw, headers: { 'webhook-id': undefined } }),
      await deliver(h, { raw, headers: { 'webhook-timestamp': undefined } }),
      await deliver(h, { body, at: new Date(Date.now() - sixMinutes) }),
      await deliver(h, { body, at: new Date(Date.now() + sixMinutes) }),
    ];
    assert.deepEqual(
      attempts.map((a) => a.status),
      [401, 401, 401, 401, 401, 401],
    );
    // Tampered: signed over one body, another sent.
    const { Webhook } = await import('standardwebhooks');
    const at = new Date();
    const sig = new Webhook(currentSecret).sign('msg_t', at, raw);
    const res = await fetch(`${h.base}/webhooks/deposits`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': 'msg_t',
        'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
        'webhook-signature': sig,
      },
      body: raw.replace('1500000', '9500000'),
    });
    assert.equal(res.status, 401);
    assert.equal((await jobs(body.txHash)).length, 0);
  });

  it('should refuse a bad body with 400 naming the field, and an unknown field', async () => {
    const bad = await deliver(h, { body: { ...solDeposit(), amount: '1.5' } });
    assert.equal(bad.status, 400);
    assert.deepEqual(
      bad.body.error.fields.map((f: { path: string }) => f.path),
      ['amount'],
    );
    const extra = await deliver(h, { body: { ...solDeposit(), memo: 'x' } });
    assert.equal(extra.status, 400);
    const chain = await deliver(h, { body: { ...solDeposit(), chain: 'BTC' } });
    assert.deepEqual(
      chain.body.error.fields.map((f: { path: string }) => f.path),
      ['chain'],
    );
    const notJson = await deliver(h, { raw: '{"chain":' });
    assert.equal(notJson.status, 400);
  });

  it('should refuse with 400 a txHash that cannot be a transaction on its chain, storing nothing', async () => {
    const cases = [
      { ...solDeposit(), chain: 'ETH', txHash: '0xaa01' },
      { ...solDeposit(), chain: 'ETH', txHash: `aa${'0'.repeat(64)}` },
      { ...solDeposit(), txHash: `0x${'ab'.repeat(32)}` },
      // base58, but of 32 bytes (an address, not a signature)
      { ...solDeposit(), txHash: '9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin' },
    ];
    for (const body of cases) {
      const res = await deliver(h, { body });
      assert.equal(res.status, 400, body.txHash);
      assert.deepEqual(
        res.body.error.fields.map((f: { path: string }) => f.path),
        ['txHash'],
      );
      assert.equal((await jobs(body.txHash)).length, 0);
    }
  });

  it('should answer a resent webhook-id with the same body as before, and refuse it with another body', async () => {
    const id = `msg_${randomUUID()}`;
    const body = solDeposit();
    const first = await deliver(h, { body, id });
    const resent = await deliver(h, { body, id });
    assert.equal(first.status, 200);
    assert.deepEqual(resent, first);
    const other = await deliver(h, { body: { ...body, amount: '2' }, id });
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'WEBHOOK_ID_REUSED');
    assert.equal((await jobs(body.txHash)).length, 1);
  });

  it('should refuse an oversized body with 413', async () => {
    const res = await deliver(h, { body: { ...solDeposit(), pad: 'x'.repeat(4096) } });
    assert.equal(res.status, 413);
  });

  it('should answer the same deposit again with the same job id, one row and one message', async () => {
    const body = solDeposit();
    const first = await deliver(h, { body });
    const again = await deliver(h, { body });
    const withIndex = await deliver(h, { body: { ...body, eventIndex: 0 } });
    assert.equal(first.status, 200);
    assert.equal(again.body.jobId, first.body.jobId);
    assert.equal(withIndex.body.jobId, first.body.jobId);
    const other = await deliver(h, { body: { ...body, eventIndex: 1 } });
    assert.notEqual(other.body.jobId, first.body.jobId);
    assert.equal((await jobs(body.txHash)).length, 2);
    await waitFor(() => h.seen.filter((m) => m.routingKey === 'deposit.received' && m.body.txHash === body.txHash).length === 2);
    // A check that no duplicate follows: a window to watch, there is no event to wait for.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.seen.filter((m) => m.routingKey === 'deposit.received' && m.body.depositId === first.body.jobId).length, 1);
  });

  it('should create one job for 50 concurrent deliveries of the same deposit', async () => {
    const body = solDeposit();
    const answers = await Promise.all(Array.from({ length: 50 }, () => deliver(h, { body })));
    assert.deepEqual(new Set(answers.map((a) => a.status)), new Set([200]));
    const ids = new Set(answers.map((a) => a.body.jobId));
    assert.equal(ids.size, 1);
    assert.equal((await jobs(body.txHash)).length, 1);
  });

  it('should accept another claim for the same transfer as another job (the chain decides which is true)', async () => {
    const body = solDeposit();
    const first = await deliver(h, { body });
    const other = await deliver(h, { body: { ...body, amount: '1' } });
    assert.equal(other.status, 200);
    assert.notEqual(other.body.jobId, first.body.jobId);
    assert.equal((await jobs(body.txHash)).length, 2);
  });
});

describe('webhooks intake: rate limit and storage failures', function () {
  this.timeout(30_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('should answer 429 past the rate limit of the authenticated sender, whatever a client header says', async () => {
    const acme = newSecret();
    const globex = newSecret();
    h = await startHarness({ WEBHOOK_SECRETS: `acme=${acme},globex=${globex}`, WEBHOOK_RATE_PER_MINUTE: '3' });
    const from = (secret: string, ip: string) => deliver(h!, { body: solDeposit(), secret, headers: { 'x-forwarded-for': ip } });
    const statuses = [];
    // A new forwarded-for on every request: the limit follows the secret, not the header.
    for (let i = 0; i < 4; i++) statuses.push((await from(acme, `10.0.0.${i}`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal((await from(globex, '10.0.0.1')).status, 200);
  });

  it('should accept the old bare-secret format of WEBHOOK_SECRETS as one sender', async () => {
    const a = newSecret();
    const b = newSecret();
    h = await startHarness({ WEBHOOK_SECRETS: `${a},${b}`, WEBHOOK_RATE_PER_MINUTE: '2' });
    const statuses = [];
    for (const secret of [a, b, a]) statuses.push((await deliver(h, { body: solDeposit(), secret })).status);
    // Both bare secrets are the one `default` sender, sharing its limit.
    assert.deepEqual(statuses, [200, 200, 429]);
  });

  it('should answer 503 when the deposit cannot be stored', async () => {
    h = await startHarness();
    // The table the accept writes to is gone: the insert fails, as with a dead database.
    await h.db.query('ALTER TABLE deposits RENAME TO deposits_gone');
    const res = await deliver(h, { body: solDeposit() });
    assert.equal(res.status, 503);
    assert.equal(res.body.error.code, 'UNAVAILABLE');
    await h.db.query('ALTER TABLE deposits_gone RENAME TO deposits');
  });
});

describe('webhooks intake: a publish the broker does not confirm', function () {
  this.timeout(30_000);
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  /**
   * What the webhooks broker user may publish on wallet.events in this vhost (the fleet's definitions
   * allow deposit.* and audit.webhooks.*). Set before the process publishes anything: RabbitMQ caches
   * a channel's topic permission checks, and a refusal closes the channel, so the next one asks again.
   */
  const mayPublish = (vhost: string, write: string) =>
    applyBrokerDefinitions(vhost, {
      users: [],
      permissions: [],
      exchanges: [],
      queues: [],
      bindings: [],
      policies: [],
      topic_permissions: [{ user: 'webhooks', exchange: 'wallet.events', write, read: '^(deposit\\.received|wallet\\.created)$' }],
    });
  const FLEET_WRITE = '^(audit\\.webhooks\\..+|deposit\\.credited|deposit\\.failed|deposit\\.received|deposit\\.reversed)$';
  const received = (hh: Harness, depositId: string) => hh.seen.filter((m) => m.routingKey === 'deposit.received' && m.body.depositId === depositId);

  it('should answer 503, never 200, while the broker refuses the job, and the same job id once the sender retries', async () => {
    h = await startHarness({ WEBHOOKS_ROLES: 'intake' });
    await mayPublish(h.vhost.vhost, '^audit\\.webhooks\\..+$');
    const body = solDeposit();
    const refused = await deliver(h, { body });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'UNAVAILABLE');
    // Stored, not confirmed: the retry (or the republisher) sends it.
    const [row] = (await h.db.query('SELECT deposit_id, job_published FROM deposits WHERE tx_hash = $1', [body.txHash])).rows;
    assert.equal(row.job_published, false);

    await mayPublish(h.vhost.vhost, FLEET_WRITE);
    const retried = await deliver(h, { body });
    assert.equal(retried.status, 200);
    assert.equal(retried.body.jobId, row.deposit_id);
    await waitFor(() => received(h!, row.deposit_id).length === 1, { what: 'deposit.received of the retried delivery' });
    await waitFor(async () => (await h!.db.query('SELECT job_published FROM deposits WHERE deposit_id = $1', [row.deposit_id])).rows[0].job_published, {
      what: 'the confirm recorded',
    });
  });

  it('should publish again, with the same audit event id, a stored delivery whose messages were never confirmed and whose sender gave up', async () => {
    h = await startHarness({ WEBHOOKS_ROLES: 'intake', DEPOSIT_REPUBLISH_AFTER_MS: '300' });
    await mayPublish(h.vhost.vhost, '^$');
    const body = solDeposit();
    assert.equal((await deliver(h, { body })).status, 503);
    const [row] = (await h.db.query('SELECT deposit_id FROM deposits WHERE tx_hash = $1', [body.txHash])).rows;
    // As a process killed between its commit and the publish leaves it: a row nobody sent for.
    const killed = randomUUID();
    await h.db.query(
      `INSERT INTO deposits (deposit_id, chain, tx_hash, event_index, token, amount, to_address, webhook_id, job_published, created_at)
       VALUES ($1, 'SOL', $2, 0, 'native', 7, $3, 'acme:msg_killed', false, now() - interval '1 minute')`,
      [killed, randomSolSignature(), body.toAddress],
    );

    await mayPublish(h.vhost.vhost, FLEET_WRITE);
    for (const id of [row.deposit_id, killed]) {
      await waitFor(() => received(h!, id).length >= 1, { what: `deposit.received of ${id} republished` });
      const audit = await waitFor(() => h!.seen.find((m) => m.routingKey === 'audit.webhooks.deposit.accept' && m.body.resource.id === id));
      assert.equal(audit.body.eventId, acceptEventId(id));
    }
    await waitFor(async () => (await h!.db.query('SELECT count(*)::int AS n FROM deposits WHERE NOT job_published')).rows[0].n === 0, {
      what: 'every republished deposit recorded',
    });
    // Recorded, so not sent again by the next sweeps: a window to watch, there is no event to wait for.
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(received(h, killed).length, 1);
  });
});
