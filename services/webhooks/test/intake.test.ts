import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { waitFor } from '@wallet-fleet/testing';
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
    // Answered only after the confirm: nothing is left in the outbox for this deposit.
    const left = await h.db.query('SELECT 1 FROM outbox WHERE message_id = $1', [res.body.jobId]);
    assert.equal(left.rowCount, 0);
    const received = await waitFor(() => h.seen.find((m) => m.routingKey === 'deposit.received' && m.body.depositId === res.body.jobId));
    assert.equal(received.body.amount, '1500000');
    assert.equal(received.body.eventIndex, 0);
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
