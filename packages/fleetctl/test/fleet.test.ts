// fleetctl's other commands as an operator runs them: a separate process; the services are played by
// responders of packages/messaging (requests over the real broker) and plain HTTP servers (probes,
// POST /runs on the admin listener) answering what the real ones answer.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, Exchanges, FleetError, type AuditQueryResult, type ParsedRequestOf } from '@wallet-fleet/contracts';
import { defineTopology } from '@wallet-fleet/messaging';
import type { TestVhost } from '@wallet-fleet/testing';
import { broker, cleanup, fleetctl, fleetctlJson, freshVhost } from './support.js';

const topology = defineTopology({
  queues: [
    {
      name: 'audit.commands',
      kind: 'rpc',
      bindings: [
        { exchange: Exchanges.commands, pattern: 'wallet.audit.query' },
        { exchange: Exchanges.commands, pattern: 'wallet.audit.verify' },
      ],
    },
    { name: 'wallet.commands', kind: 'rpc', bindings: [{ exchange: Exchanges.commands, pattern: 'wallet.management.get' }] },
  ],
});

/** An HTTP server answering `route` (method + path) with `status` and a JSON body; its port. */
async function httpStub(
  answers: Record<string, { status: number; body: unknown }>,
): Promise<{ port: number; server: Server; seen: string[]; authorization: Array<string | undefined> }> {
  const seen: string[] = [];
  const authorization: Array<string | undefined> = [];
  const server = createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    seen.push(key);
    authorization.push(req.headers.authorization);
    const a = answers[key] ?? { status: 404, body: { error: { code: 'NOT_FOUND' } } };
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { port: (server.address() as AddressInfo).port, server, seen, authorization };
}
const servers: Server[] = [];

describe('fleetctl commands of the fleet', () => {
  let vhost: TestVhost;
  beforeEach(async () => {
    vhost = await freshVhost();
  });
  afterEach(async () => {
    await cleanup();
    for (const s of servers.splice(0)) s.close();
    await vhost.drop();
  });

  it('should query and verify the audit log over the broker, with tables by default and --json', async () => {
    const queries: Array<ParsedRequestOf<'wallet.audit.query'>> = [];
    let chain = { valid: true, checked: 3 } as { valid: boolean; checked: number; brokenAt?: number; reason?: string };
    const b = broker(vhost, topology);
    const stored: AuditQueryResult['items'][number] = {
      eventId: randomUUID(),
      occurredAt: '2026-11-30T10:00:00.000Z',
      actor: { type: 'service', id: 'kyc' },
      action: 'kyc.review',
      resource: { type: 'user', id: 'alice' },
      userId: 'alice',
      status: 'success',
      sequence: 7,
      recordedAt: '2026-11-30T10:00:01.000Z',
      hash: 'ab'.repeat(32),
    };
    b.handleCommands('audit.commands', {
      'wallet.audit.query': async (q) => {
        queries.push(q);
        return { items: [stored], nextCursor: 'c-2' };
      },
      'wallet.audit.verify': async () => chain,
    });
    await b.start();

    const table = await fleetctl(vhost, ['audit', 'query', '--user', 'alice', '--limit', '5']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^\s*SEQ\s+OCCURRED\s+ACTION\s+STATUS\s+USER\s+RESOURCE\s+ACTOR/);
    assert.match(table.stdout, /\n\s*7\s+2026-11-30T10:00:00.000Z\s+kyc\.review\s+success\s+alice\s+user:alice\s+service:kyc/);
    assert.match(table.stdout, /more: --cursor c-2/);
    assert.deepEqual(queries[0], { userId: 'alice', limit: 5 });

    const json = await fleetctlJson<AuditQueryResult>(vhost, ['audit', 'query', '--action', 'kyc.review']);
    assert.deepEqual(json, { items: [stored], nextCursor: 'c-2' });
    assert.deepEqual(queries[1], { action: 'kyc.review', limit: 20 });

    assert.equal((await fleetctl(vhost, ['audit', 'verify'])).code, 0);
    chain = { valid: false, checked: 3, brokenAt: 2, reason: 'hash mismatch' };
    const broken = await fleetctl(vhost, ['audit', 'verify']);
    assert.equal(broken.code, 1, 'a broken chain is a failure a script can see');
    assert.match(broken.stdout, /brokenAt:\s+2/);
  });

  it("should fail with the service's error code, UNROUTABLE when no service serves the operation, and UNAVAILABLE without a broker", async () => {
    const b = broker(vhost, topology);
    b.handleCommands('wallet.commands', {
      'wallet.management.get': async (q) => {
        throw new FleetError(ErrorCode.WALLET_NOT_FOUND, `no wallet ${q.walletId} for ${q.userId}`);
      },
    });
    b.handleCommands('audit.commands', {
      'wallet.audit.query': async () => ({ items: [], nextCursor: null }),
      'wallet.audit.verify': async () => ({ valid: true, checked: 0 }),
    });
    await b.start();

    const walletId = randomUUID();
    const missing = await fleetctl(vhost, ['wallet', 'get', 'alice', walletId, '--json']);
    assert.equal(missing.code, 1);
    assert.equal(JSON.parse(missing.stdout).error.code, ErrorCode.WALLET_NOT_FOUND);
    assert.match(missing.stderr, new RegExp(`WALLET_NOT_FOUND: no wallet ${walletId} for alice`));

    const unroutable = await fleetctl(vhost, ['deposits', 'summary']);
    assert.equal(unroutable.code, 1);
    assert.match(unroutable.stderr, /UNROUTABLE: no service takes wallet.deposits.summary in this vhost: is webhooks running\?/);

    const invalid = await fleetctl(vhost, ['wallet', 'get', 'alice', 'not-a-uuid']);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /VALIDATION_FAILED/);

    const started = Date.now();
    const down = await fleetctl(vhost, ['audit', 'verify'], { AMQP_URL: 'amqp://guest:s3cret@127.0.0.1:1/', FLEETCTL_TIMEOUT_MS: '2000' });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /UNAVAILABLE: .*127\.0\.0\.1:1/);
    assert.doesNotMatch(down.stderr, /s3cret/, 'no password in the error');
    assert.ok(Date.now() - started < 10_000, 'gives up after its timeout');
  });

  it('should show every service /ready and the queue depths, exit 1 when one is not ready', async () => {
    const b = broker(vhost, topology);
    b.handleCommands('audit.commands', {
      'wallet.audit.query': async () => ({ items: [], nextCursor: null }),
      'wallet.audit.verify': async () => ({ valid: true, checked: 0 }),
    });
    await b.start();
    const audit = await httpStub({ 'GET /ready': { status: 200, body: { status: 'ready', checks: {} } } });
    const wallet = await httpStub({ 'GET /ready': { status: 503, body: { status: 'not_ready', failed: ['postgres'] } } });
    const env = { AUDIT_HTTP_PORT: String(audit.port), WALLET_HTTP_PORT: String(wallet.port) };

    type Health = { services: Array<{ service: string; ready: boolean; failed: string[] }>; queues: Array<{ queue: string; dlq: number | null }> };
    const both = await fleetctlJson<Health>(vhost, ['health', '--service', 'audit', '--service', 'wallet'], 1, env);
    assert.deepEqual(
      both.services.map((s) => [s.service, s.ready, s.failed]),
      [
        ['audit', true, []],
        ['wallet', false, ['postgres']],
      ],
    );
    assert.deepEqual(
      // The fleet's event queues (and wallet.unroutable) are declared ahead by the definitions of this vhost.
      both.queues.map((q) => q.queue).filter((q) => q.endsWith('.commands') || /\.(dlq|delay\.\d+)$/.test(q)),
      ['audit.commands', 'wallet.commands'],
      'work queues only, their DLQs beside them',
    );

    const one = await fleetctl(vhost, ['health', '--service', 'audit'], env);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /audit\s+ready/);
    assert.match(one.stdout, /QUEUE\s+READY\s+UNACKED\s+CONSUMERS\s+DLQ/);

    const blind = await fleetctl(vhost, ['health', '--service', 'audit'], { ...env, RABBITMQ_MANAGEMENT_URL: 'http://guest:guest@127.0.0.1:1' });
    assert.equal(blind.code, 1, 'unknown queue depths are not a healthy answer');
    assert.match(blind.stdout, /audit\s+ready/, 'the probes are still shown');
    assert.match(blind.stdout, /queue depths unknown: GET http:\/\/guest:\*\*\*@127\.0\.0\.1:1\/api\/queues/, 'why, without the password');
  });

  it('should run a reconciliation pass through POST /runs on the admin listener and say when another replica holds it', async () => {
    const report = { deposits: { checked: 0 }, outbox: [], drift: { depositsPending: 0 } };
    const ok = await httpStub({ 'POST /runs': { status: 200, body: { outcome: 'completed', runId: 'r-1', report } } });
    const run = await fleetctlJson<{ outcome: string; runId: string }>(vhost, ['reconcile', 'run'], 0, { RECONCILIATION_ADMIN_PORT: String(ok.port) });
    assert.deepEqual(run, { outcome: 'completed', runId: 'r-1', report });
    assert.deepEqual(ok.seen, ['POST /runs']);
    assert.deepEqual(ok.authorization, [undefined], 'no token unless ADMIN_TOKEN is set');

    const busy = await httpStub({ 'POST /runs': { status: 409, body: { outcome: 'skipped_locked' } } });
    const locked = await fleetctl(vhost, ['reconcile', 'run'], { RECONCILIATION_ADMIN_PORT: String(busy.port) });
    assert.equal(locked.code, 1);
    assert.match(locked.stdout, /another replica is running a pass/);
  });

  it('should send ADMIN_TOKEN as a bearer token to the admin listener, and say what to set when it answers 401', async () => {
    const token = 't'.repeat(40);
    const ok = await httpStub({ 'POST /runs': { status: 200, body: { outcome: 'completed', runId: 'r-2', report: {} } } });
    const run = await fleetctl(vhost, ['reconcile', 'run'], { RECONCILIATION_ADMIN_PORT: String(ok.port), ADMIN_TOKEN: token });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(ok.authorization, [`Bearer ${token}`]);

    const refusing = await httpStub({ 'POST /runs': { status: 401, body: { error: { code: 'UNAUTHENTICATED' } } } });
    const refused = await fleetctl(vhost, ['reconcile', 'run'], { RECONCILIATION_ADMIN_PORT: String(refusing.port) });
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /set ADMIN_TOKEN/);
  });

  it('should answer bad usage with exit code 2 and the usage line', async () => {
    const unknown = await fleetctl(vhost, ['wallet', 'delete', 'alice']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command wallet delete/);
    const missing = await fleetctl(vhost, ['provisioning', 'status']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing <userId>\nusage: fleetctl provisioning status <userId>/);
    const badFlag = await fleetctl(vhost, ['deposits', 'stuck', '--older-than', 'soon']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /--older-than must be an integer/);
  });
});
