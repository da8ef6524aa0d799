// scripts/call.mjs as an operator uses it: a real broker (a vhost of its own), a responder written
// here that plays the service, and the CLI as a separate process.
import assert from 'node:assert/strict';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { operations } from '@wallet-fleet/contracts';
import { createVhost, runNode, type TestVhost } from '@wallet-fleet/testing';
import amqp from 'amqplib';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const call = (url: string, args: string[], env: Record<string, string> = {}) =>
  runNode([join(repoRoot, 'scripts/call.mjs'), ...args], { env: { ...process.env, AMQP_URL: url, ...env } });

describe('call CLI (scripts/call.mjs)', () => {
  let vhost: TestVhost;
  let conn: amqp.ChannelModel;
  const seen: amqp.ConsumeMessage[] = [];

  before(async () => {
    vhost = await createVhost('call-cli');
    conn = await amqp.connect(vhost.url, { noDelay: true });
    const ch = await conn.createChannel();
    await ch.assertExchange('wallet.commands', 'topic', { durable: true });
    const { queue } = await ch.assertQueue('test.requests', { durable: false });
    for (const key of ['test.echo', 'test.refuse', 'test.silent']) await ch.bindQueue(queue, 'wallet.commands', key);
    // The service side: echo the body, refuse, or stay silent, always replying with the request's
    // correlation id to its reply_to, as the messaging runtime does.
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      seen.push(msg);
      ch.ack(msg);
      const { replyTo, correlationId } = msg.properties;
      const body = JSON.parse(msg.content.toString());
      const reply =
        msg.fields.routingKey === 'test.echo'
          ? { ok: true, result: { echo: body, walletId: 'w-1' } }
          : msg.fields.routingKey === 'test.refuse'
            ? { ok: false, error: { code: 'NOT_FOUND', message: 'no such wallet', retryable: false } }
            : undefined;
      if (reply) ch.sendToQueue(replyTo, Buffer.from(JSON.stringify(reply)), { correlationId });
    });
  });
  after(async () => {
    await conn?.close();
    await vhost?.drop();
  });

  it('should print the reply JSON and exit 0 on {ok:true}, having sent a request with correlation id, direct reply-to and a deadline (no expiration)', async () => {
    const r = await call(vhost.url, ['test.echo', '{"userId":"alice","n":1}'], { CALL_TIMEOUT_MS: '5000' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { ok: true, result: { echo: { userId: 'alice', n: 1 }, walletId: 'w-1' } });
    const req = seen.find((m) => m.fields.routingKey === 'test.echo')!;
    assert.match(req.properties.correlationId, /^[0-9a-f-]{36}$/);
    assert.match(req.properties.replyTo, /^amq\.rabbitmq\.reply-to/);
    assert.equal(req.properties.expiration, undefined);
    const deadline = Number(req.properties.headers?.['x-deadline']);
    assert.ok(deadline > Date.now() - 60_000 && deadline <= Date.now() + 5000, `x-deadline ${deadline}`);
    assert.equal(req.properties.contentType, 'application/json');
  });

  it('should print only the value at --get for a shell variable', async () => {
    const r = await call(vhost.url, ['test.echo', '{}', '--get', 'result.walletId']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'w-1\n');
  });

  it('should print the error reply and exit 1 on {ok:false}', async () => {
    const r = await call(vhost.url, ['test.refuse', '{}', '--get', 'result.walletId']);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.code, 'NOT_FOUND');
  });

  it('should exit 1 at once saying so when no service is bound for the operation', async () => {
    const r = await call(vhost.url, ['test.nobody', '{}'], { CALL_TIMEOUT_MS: '60000' });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /unroutable: no service is bound for test\.nobody on wallet\.commands \(it is not an operation of docs\/asyncapi\.json either: see --help\)/,
    );
    assert.equal(r.stdout, '');
  });

  it('should exit 1 naming the timeout when no reply comes', async () => {
    const r = await call(vhost.url, ['test.silent', '{}'], { CALL_TIMEOUT_MS: '300' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no reply to test\.silent within 300 ms/);
  });

  it('should refuse a body that is not JSON with exit 2 before connecting', async () => {
    const r = await call('amqp://nobody:nothing@127.0.0.1:1', ['test.echo', '{userId:alice}']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /the body is not JSON/);
  });

  it('should exit 1 without showing the password when the broker cannot be reached, saying nothing listens there', async () => {
    const r = await call('amqp://guest:s3cret@127.0.0.1:1', ['test.echo', '{}']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to RabbitMQ at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1: nothing listens at 127\.0\.0\.1:1 \(is RabbitMQ running\?/);
    assert.ok(!r.stderr.includes('s3cret'), r.stderr);
  });

  it('should name the vhost when it does not exist on the broker', async () => {
    const missing = new URL(vhost.url);
    missing.pathname = `/${encodeURIComponent(`${decodeURIComponent(missing.pathname.slice(1))}-missing`)}`;
    const r = await call(missing.toString(), ['test.echo', '{}']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the broker refused to open vhost "call-cli[^"]*-missing": it does not exist or user "guest" may not use it/);
    assert.ok(!r.stderr.includes('ConnectionOpenOk'), r.stderr);
  });

  it('should say the credentials were refused, without showing the password', async () => {
    const wrong = new URL(vhost.url);
    wrong.password = 'not-the-password';
    const r = await call(wrong.toString(), ['test.echo', '{}']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the broker refused the credentials of user "guest" \(check the user and password in AMQP_URL\)/);
    assert.ok(!r.stderr.includes('not-the-password'), r.stderr);
  });

  it('should list every operation of the catalogue with its summary on --help, exit 0, without connecting', async () => {
    const r = await call('amqp://nobody:nothing@127.0.0.1:1', ['--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: node scripts\/call\.mjs <operation>/m);
    const listed = r.stdout.split('\n').filter((l) => /^ {2}wallet\./.test(l));
    assert.deepEqual(
      listed.map((l) => l.trim().split(/\s+/)[0]),
      Object.keys(operations),
    );
    for (const [name, op] of Object.entries(operations)) {
      assert.ok(
        listed.some((l) => l.trim().startsWith(name) && l.trimEnd().endsWith(op.summary)),
        `${name}: ${op.summary}\n${r.stdout}`,
      );
    }
  });
});
