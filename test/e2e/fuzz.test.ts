// Hostile input over the bus (issue 14): generated valid, boundary and invalid messages for every
// operation and event of the catalogue, sent with plain amqplib as an outside caller holding the
// right role (an operation's caller, an event's producer). Seeded and replayable: the seed and count
// are printed when the suite fails (FUZZ_SEED=… FUZZ_COUNT=… pnpm exec mocha test/e2e/fuzz.test.ts).
//
// What must hold: every request is answered with a code its catalogue entry lists (or success), and
// one the request schema refuses with VALIDATION_FAILED; every event the payload schema refuses is
// dead-lettered with a reason; every valid audit event, its poisoned neighbours notwithstanding, is
// stored; no service process restarts; wallet.audit.verify finds the chain valid at the end.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ErrorCode, type EventName, events, Headers, type OperationName, operations } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import { backingServices, createFleetVhost, createSchemaName, rabbitAdmin, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp, { type ConfirmChannel } from 'amqplib';
import pg from 'pg';
import { type ServiceProcess, startService } from './support/service-process.js';

const SEED = Number(process.env.FUZZ_SEED ?? 14);
const COUNT = Number(process.env.FUZZ_COUNT ?? 4000);

/** mulberry32: a small seeded generator, so that a run can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(16)]).join('');
  const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`;
  return { next, int, pick, hex, uuid };
}
type Rng = ReturnType<typeof prng>;

const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const chains = ['SOL', 'ETH', 'APTOS'] as const;
const user = (r: Rng) => `fuzz-${r.int(50)}`;
/** Timestamps the contract admits, some at its edges (sub-millisecond digits, extreme offsets, first and last years). */
const timestamp = (r: Rng) =>
  r.pick([
    new Date(Date.UTC(2026, 11, 1, 0, 0, r.int(3600))).toISOString(),
    '2026-12-01T00:00:00.123456789+14:00',
    '2026-12-01T00:00:00.5-12:00',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
    '2026-12-01T10:00:00+05:30',
  ]);
const wallet = (r: Rng) => ({
  walletId: r.uuid(),
  userId: user(r),
  chain: r.pick(chains),
  address: `0x${r.hex(40)}`,
  label: null,
  isActive: true,
  createdAt: timestamp(r),
});
const deposit = (r: Rng) => ({
  depositId: r.uuid(),
  chain: r.pick(chains),
  txHash: `0x${r.hex(64)}`,
  eventIndex: r.int(3),
  token: 'native',
  amount: String(r.int(1e9)),
  toAddress: `0x${r.hex(40)}`,
});

/** A valid body of every operation. */
const validRequest: Record<OperationName, (r: Rng) => unknown> = {
  'wallet.management.create': (r) => ({ userId: user(r), chain: r.pick(chains), idempotencyKey: `fuzz-${r.hex(8)}` }),
  'wallet.management.list': (r) => ({ userId: user(r), ...(r.int(2) ? { chain: r.pick(chains) } : {}) }),
  'wallet.management.get': (r) => ({ userId: user(r), walletId: r.uuid() }),
  'wallet.management.setActive': (r) => ({ userId: user(r), walletId: r.uuid() }),
  'wallet.balance.get': (r) => ({ userId: user(r), walletId: r.uuid() }),
  'wallet.balance.getTokens': (r) => ({ userId: user(r), walletId: r.uuid() }),
  'wallet.transaction.transferSol': (r) => ({
    userId: user(r),
    walletId: r.uuid(),
    recipient: Array.from({ length: 44 }, () => r.pick([...B58])).join(''),
    amount: r.pick(['0', '1', '1000000', '9'.repeat(78)]),
    idempotencyKey: `fuzz-${r.hex(8)}`,
  }),
  'wallet.transaction.transfer': (r) => ({
    userId: user(r),
    walletId: r.uuid(),
    asset: r.pick([
      { type: 'native' },
      { type: 'token', mint: Array.from({ length: 44 }, () => r.pick([...B58])).join('') },
      { type: 'token', contract: `0x${r.hex(40)}` },
    ]),
    recipient: r.pick([Array.from({ length: 44 }, () => r.pick([...B58])).join(''), `0x${r.hex(40)}`]),
    amount: r.pick(['0', '1', '1000000', '9'.repeat(78)]),
    idempotencyKey: `fuzz-${r.hex(8)}`,
  }),
  'wallet.approval.list': (r) => ({ ...(r.int(2) ? { userId: user(r) } : {}), ...(r.int(2) ? { status: r.pick(['pending', 'completed']) } : {}) }),
  'wallet.approval.get': (r) => ({ approvalId: r.uuid() }),
  'wallet.approval.approve': (r) => ({ approvalId: r.uuid() }),
  'wallet.approval.reject': (r) => ({ approvalId: r.uuid(), reason: 'fuzz' }),
  'wallet.transaction.sign': (r) => ({ userId: user(r), walletId: r.uuid(), transaction: Buffer.from(r.hex(64), 'hex').toString('base64') }),
  'wallet.policy.get': (r) => r.pick([{ scope: 'fleet' }, { scope: 'user', userId: user(r) }, { scope: 'wallet', walletId: r.uuid() }]),
  'wallet.policy.set': (r) => ({ scope: 'user', userId: user(r), rules: { maxPerTransaction: { SOL: String(r.int(1e9)) } } }),
  'wallet.provisioning.status': (r) => ({ userId: user(r) }),
  'wallet.provisioning.provision': (r) => ({ userId: user(r), chains: [r.pick(chains)] }),
  'wallet.deposits.stuck': (r) => ({ olderThanSeconds: r.pick([0, 60, 365 * 86_400]), limit: r.pick([1, 100, 1000]) }),
  'wallet.deposits.reconcile': (r) => ({ depositId: r.uuid(), maxAgeSeconds: r.pick([1, 3600]) }),
  'wallet.deposits.summary': () => ({}),
  'wallet.audit.query': (r) => ({ userId: user(r), limit: r.pick([1, 50, 500]), ...(r.int(2) ? { from: timestamp(r) } : {}) }),
  'wallet.audit.verify': () => ({}),
  'wallet.audit.checkpoint': () => ({}),
};

const auditEvent = (r: Rng) => ({
  eventId: r.uuid(),
  occurredAt: timestamp(r),
  actor: { type: r.pick(['service', 'user', 'operator', 'system']), id: 'backend' },
  action: 'fuzz.probe',
  resource: { type: 'user', id: user(r) },
  userId: user(r),
  status: r.pick(['success', 'failed', 'started']),
  ...(r.int(2) ? { after: { n: r.int(100), s: 'ünïcödé ✓ 😀', nested: { a: [1, { b: null }] } } } : {}),
  correlationId: r.hex(16),
});

/** A kept approval request, as the wallet service announces it. */
const approval = (r: Rng) => ({
  approvalId: r.uuid(),
  operation: 'wallet.transaction.transfer',
  userId: user(r),
  walletId: r.uuid(),
  chain: 'SOL',
  status: 'pending',
  requestedBy: 'backend',
  required: 2,
  approvedBy: [],
  rejectedBy: null,
  request: { amount: '1' },
  intent: { chain: 'SOL' },
  rule: { asset: 'SOL' },
  createdAt: timestamp(r),
  expiresAt: timestamp(r),
  result: null,
  error: null,
});

/** A valid payload of every event, and the role that publishes it. */
const validEvent: Record<EventName, { role: string; key: string; body: (r: Rng) => unknown }> = {
  'kyc.approved': { role: 'backend', key: 'kyc.approved', body: (r) => ({ userId: user(r), chains: [r.pick(chains)] }) },
  'wallet.created': { role: 'wallet', key: 'wallet.created', body: wallet },
  'wallet.provisioning.completed': {
    role: 'provisioning',
    key: 'wallet.provisioning.completed',
    body: (r) => ({ userId: user(r), wallets: [{ chain: 'SOL', walletId: r.uuid(), address: 'x' }] }),
  },
  'provisioning.chain.requested': { role: 'provisioning', key: 'provisioning.chain.requested', body: (r) => ({ userId: user(r), chain: r.pick(chains) }) },
  'wallet.provisioning.failed': {
    role: 'provisioning',
    key: 'wallet.provisioning.failed',
    body: (r) => ({ userId: user(r), chain: 'SOL', error: { code: 'UNAVAILABLE', message: 'x' } }),
  },
  'deposit.received': { role: 'webhooks', key: 'deposit.received', body: deposit },
  'deposit.credited': { role: 'webhooks', key: 'deposit.credited', body: (r) => ({ ...deposit(r), ledgerEntryId: r.uuid() }) },
  'deposit.failed': { role: 'webhooks', key: 'deposit.failed', body: (r) => ({ ...deposit(r), reason: 'x' }) },
  'deposit.reversed': { role: 'webhooks', key: 'deposit.reversed', body: (r) => ({ ...deposit(r), ledgerEntryId: r.uuid(), reason: 'x' }) },
  'audit.checkpoint': {
    role: 'audit',
    key: 'audit.checkpoint',
    body: (r) => ({ checkpointId: r.uuid(), sequence: 0, hash: r.hex(64), signedAt: timestamp(r), keyVersion: 'k', signature: r.hex(128) }),
  },
  'wallet.approval.requested': { role: 'wallet', key: 'wallet.approval.requested', body: (r) => approval(r) },
  'wallet.approval.completed': {
    role: 'wallet',
    key: 'wallet.approval.completed',
    body: (r) => ({ ...approval(r), status: 'completed', result: { signature: 'x' } }),
  },
  'wallet.approval.rejected': {
    role: 'wallet',
    key: 'wallet.approval.rejected',
    body: (r) => ({ ...approval(r), status: 'rejected', rejectedBy: { user: 'approver-1', at: timestamp(r) } }),
  },
  'audit.#': { role: 'backend', key: 'audit.backend.fuzz.probe', body: auditEvent },
};

/** Raw JSON text standing in for a string placeholder (deep nesting cannot go through JSON.stringify). */
const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
const RAW = '\u0001raw:';

/** Values put in place of one field (or added next to them). */
const hostileValues = (r: Rng): unknown[] => [
  null,
  0,
  -1,
  1.5,
  1e308,
  2 ** 64,
  true,
  [],
  {},
  '',
  'x'.repeat(r.pick([129, 257, 70_000])),
  'a\u0000b',
  '\uD800',
  'x\uDC00y',
  '2026-13-45T25:61:00Z',
  '0000-01-01T00:00:00Z',
  '+275760-09-13T00:00:00.000Z',
  '2026-12-01T00:00:00',
  `${RAW}${deep(r.pick([40, 5000]))}`,
  `${RAW}123456789012345678901234567890e99999`,
];

/** Whole bodies that are no valid JSON object. */
const hostileBodies = (r: Rng): Buffer[] => [
  Buffer.from('{"eventId": '),
  Buffer.alloc(0),
  Buffer.from('null'),
  Buffer.from('[]'),
  Buffer.from('"text"'),
  Buffer.from([0xff, 0xfe, 0x00, 0x7b]),
  Buffer.from(deep(r.pick([100, 20_000]))),
  Buffer.from(`${'['.repeat(10_000)}${']'.repeat(10_000)}`),
  Buffer.from('{"a":1,"a":2}'),
];

function leafPaths(v: unknown, path: string[] = []): string[][] {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return path.length ? [path] : [];
  const entries = Object.entries(v);
  return [...(path.length ? [path] : []), ...entries.flatMap(([k, c]) => leafPaths(c, [...path, k]))];
}

function serialise(body: unknown): Buffer {
  const text = JSON.stringify(body, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? `${RAW}1e999` : v));
  // The placeholders (quoted, possibly escaped once) become their raw JSON text.
  return Buffer.from(text.replace(/"\\u0001raw:((?:[^"\\]|\\.)*)"/g, (_m, raw: string) => JSON.parse(`"${raw}"`)));
}

interface Case {
  i: number;
  body: Buffer;
  headers: Record<string, unknown>;
  /** What was done to it, for the failure message. */
  what: string;
}

/** One message: valid (about a third), a valid body with a hostile header, one field made hostile, a field removed or added, or a hostile whole body. */
function mutate(r: Rng, i: number, valid: unknown): Case {
  const roll = r.next();
  const headers: Record<string, unknown> = {};
  if (roll < 0.35) return { i, body: serialise(valid), headers, what: 'valid' };
  if (roll < 0.45) {
    const [name, deadline] = r.pick([
      ['past x-deadline', Date.now() - 60_000],
      ['far x-deadline', Date.now() + 10 ** 12],
      ['huge x-deadline', 8.64e15 + 1],
      ['text x-deadline', 'tomorrow'],
      ['negative x-deadline', -1],
    ] as const);
    headers[Headers.deadline] = deadline;
    return { i, body: serialise(valid), headers, what: name };
  }
  if (roll < 0.9) {
    const body = structuredClone(valid) as Record<string, unknown>;
    const paths = leafPaths(body);
    const path = paths.length && r.next() < 0.9 ? r.pick(paths) : [`extra${r.int(3)}`];
    let at: Record<string, unknown> = body;
    for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
    const last = path.at(-1)!;
    const value = r.next() < 0.15 ? undefined : r.pick(hostileValues(r));
    if (value === undefined) delete at[last];
    else at[last] = value;
    const shown = typeof value === 'string' && value.length > 40 ? `${JSON.stringify(value.slice(0, 40))}…(${value.length})` : JSON.stringify(value);
    return { i, body: serialise(body), headers, what: `${path.join('.')} = ${shown ?? 'removed'}` };
  }
  const body = r.pick(hostileBodies(r));
  return { i, body, headers, what: `body ${JSON.stringify(body.subarray(0, 20).toString('latin1'))}…` };
}

/** Whether the catalogue's schema takes these bytes (what the consumer will decide). */
function admits(schema: { safeParse(v: unknown): { success: boolean } }, body: Buffer): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return false;
  }
  return schema.safeParse(parsed).success;
}

interface Reply {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

/** An outside client as one broker user: requests over direct reply-to, events with confirms. */
async function outsider(url: string, role: string) {
  const conn = await amqp.connect(url, { noDelay: true });
  conn.on('error', () => undefined);
  const ch: ConfirmChannel = await conn.createConfirmChannel();
  const pending = new Map<string, (r: Reply | undefined) => void>();
  await ch.consume('amq.rabbitmq.reply-to', (m) => m && pending.get(m.properties.correlationId)?.(JSON.parse(m.content.toString())), { noAck: true });
  ch.on('return', (m) => pending.get(m.properties.correlationId)?.({ ok: false, error: { code: ErrorCode.UNROUTABLE, message: 'returned' } }));
  return {
    /** The reply, or undefined when none came within `waitMs`. */
    request(op: string, c: Case, waitMs: number): Promise<Reply | undefined> {
      const correlationId = `fuzz-${c.i}`;
      return new Promise((resolve) => {
        const t = setTimeout(() => done(undefined), waitMs);
        function done(r: Reply | undefined) {
          clearTimeout(t);
          pending.delete(correlationId);
          resolve(r);
        }
        pending.set(correlationId, done);
        ch.publish('wallet.commands', op, c.body, {
          correlationId,
          replyTo: 'amq.rabbitmq.reply-to',
          messageId: correlationId,
          mandatory: true,
          // A deadline as the fleet's own clients send it (no `expiration`, which the broker would dead-letter).
          headers: { [Headers.deadline]: Date.now() + waitMs, ...c.headers },
          userId: role,
        });
      });
    },
    publish(key: string, c: Case): boolean {
      return ch.publish('wallet.events', key, c.body, { persistent: true, messageId: `fuzz-${c.i}`, headers: c.headers, userId: role });
    },
    confirmed: () => ch.waitForConfirms(),
    close: () => conn.close().catch(() => undefined),
  };
}

describe(`fuzz: every operation and event of the catalogue (FUZZ_SEED=${SEED}, FUZZ_COUNT=${COUNT})`, function () {
  this.timeout(300_000);
  let vhost: TestVhost;
  const schemas: Record<string, TestSchema> = {};
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  const services: ServiceProcess[] = [];
  let db: pg.Pool;

  before(async function () {
    this.timeout(120_000);
    const { databaseUrl, redisUrl } = await backingServices();
    vhost = await createFleetVhost('fuzz');
    for (const s of ['audit', 'wallet', 'provisioning', 'webhooks']) schemas[s] = await createSchemaName(`fuzz_${s}`);
    kms = await startKmsEmulator({ port: 0 });
    db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    const dead = { SOLANA_RPC_URL: 'http://127.0.0.1:9', EVM_RPC_URL: 'http://127.0.0.1:9', APTOS_NODE_URL: 'http://127.0.0.1:9/v1' };
    const common = (s: string) => ({ AMQP_URL: vhost.as(s), ...schemas[s]!.env, REDIS_URL: redisUrl, LOG_LEVEL: 'warn' });
    const slow = { readyTimeoutMs: 90_000 };
    const started = await Promise.allSettled([
      startService('audit', { ...common('audit'), KMS_ENDPOINT: kms.endpoint, AUDIT_VERIFY_PER_MINUTE: '10000' }, slow),
      startService('wallet', { ...common('wallet'), ...dead, KMS_ENDPOINT: kms.endpoint, WALLET_KEY_POOL_SIZE: '0' }, slow),
      startService('provisioning', { ...common('provisioning') }, slow),
      startService('webhooks', { ...common('webhooks'), ...dead, WEBHOOK_SECRETS: `whsec_${randomBytes(32).toString('base64')}` }, slow),
    ]);
    services.push(...started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])));
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`replay: FUZZ_SEED=${SEED} FUZZ_COUNT=${COUNT} pnpm exec mocha test/e2e/fuzz.test.ts`);
  });

  after(async function () {
    this.timeout(60_000);
    await Promise.all(services.map((s) => s.stop()));
    await kms?.stop();
    await db?.end();
    await vhost?.drop();
    for (const s of Object.values(schemas)) await s.drop();
  });

  it('should answer every request with a listed code, dead-letter every unusable event with a reason and store every valid neighbour', async () => {
    const r = prng(SEED);
    const pids = services.map((s) => s.child.pid);
    const opNames = Object.keys(operations) as OperationName[];
    const eventNames = Object.keys(events) as EventName[];
    // Every catalogue entry has a generator: a new operation or event fails here until it gets one.
    assert.deepEqual(Object.keys(validRequest).sort(), [...opNames].sort());
    assert.deepEqual(Object.keys(validEvent).sort(), [...eventNames].sort());

    const clients = new Map<string, Awaited<ReturnType<typeof outsider>>>();
    for (const role of ['backend', 'ops', 'approver', 'reconciliation', 'provisioning', 'wallet', 'webhooks', 'audit'])
      clients.set(role, await outsider(vhost.as(role), role));

    // Requests: a third of the messages, every operation in turn; the rest are events, audit events most.
    const requests: Array<{ op: OperationName; role: string; c: Case; valid: boolean }> = [];
    const sent: Array<{ name: EventName; c: Case; valid: boolean; eventId?: string }> = [];
    for (let i = 0; i < COUNT; i++) {
      if (i % 3 === 0) {
        const op = opNames[(i / 3) % opNames.length]!;
        const c = mutate(r, i, validRequest[op](r));
        const role = r.pick(operations[op].callers.filter((x) => x === 'backend' || x === 'ops' || x === 'reconciliation' || x === 'approver'));
        requests.push({ op, role, c, valid: admits(operations[op].request, c.body) });
      } else {
        const name = r.next() < 0.7 ? 'audit.#' : r.pick(eventNames);
        const body = validEvent[name].body(r);
        const c = mutate(r, i, body);
        const valid = admits(events[name].payload, c.body);
        sent.push({ name, c, valid, ...(name === 'audit.#' ? { eventId: (body as { eventId: string }).eventId } : {}) });
      }
    }

    // Events: published as their producer, with confirms.
    for (const e of sent) {
      const client = clients.get(validEvent[e.name].role)!;
      if (!client.publish(validEvent[e.name].key, e.c)) await client.confirmed();
    }
    await Promise.all([...clients.values()].map((c) => c.confirmed()));

    // Requests: 32 in flight. A request past its deadline is dropped unprocessed: it may get no reply.
    const failures: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < requests.length) {
          const { op, role, c, valid } = requests[next++]!;
          const pastDeadline = c.what === 'past x-deadline' || c.what === 'negative x-deadline';
          const reply = await clients.get(role)!.request(op, c, pastDeadline ? 2000 : 30_000);
          const code = reply === undefined ? 'no reply' : reply.ok ? 'ok' : reply.error!.code;
          const listed = [...operations[op].errors, 'ok'] as readonly string[];
          if (reply === undefined && !pastDeadline) failures.push(`#${c.i} ${op} (${c.what}): no reply`);
          if (reply !== undefined && !listed.includes(code)) failures.push(`#${c.i} ${op} (${c.what}): ${code}, not listed: ${JSON.stringify(reply)}`);
          if (!valid && reply !== undefined && code !== ErrorCode.VALIDATION_FAILED)
            failures.push(`#${c.i} ${op} (${c.what}): ${code} for a body the schema refuses`);
        }
      }),
    );
    assert.deepEqual(failures.slice(0, 20), [], `${failures.length} requests went wrong`);

    // Events the schema refuses, of the kinds a service consumes: each in a dead-letter queue with a reason.
    const consumed = new Set<EventName>(['audit.#', 'kyc.approved', 'wallet.created', 'provisioning.chain.requested', 'deposit.received']);
    const mustDie = new Map(sent.filter((e) => !e.valid && consumed.has(e.name)).map((e) => [`fuzz-${e.c.i}`, e]));
    const dead = new Map<string, { reason: unknown; code: unknown; queue: string; death: unknown }>();
    const dlqs = (await rabbitAdmin.queues(vhost.vhost)).map((q) => q.name).filter((n) => n.endsWith('.dlq'));
    await waitFor(
      async () => {
        for (const q of dlqs) {
          for (const m of await rabbitAdmin.drain(vhost.vhost, q, 500)) {
            const h = m.properties.headers ?? {};
            dead.set(String(m.properties.message_id), { reason: h[Headers.deathReason], code: h[Headers.errorCode], queue: q, death: h['x-death'] });
          }
        }
        return [...mustDie.keys()].every((id) => dead.has(id));
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `${mustDie.size} dead letters` },
    );
    const wrong: string[] = [];
    for (const [id, d] of dead) {
      const e = sent.find((s) => `fuzz-${s.c.i}` === id);
      if (!e) wrong.push(`a dead letter the suite did not send: ${id}`);
      else if (!d.reason) wrong.push(`#${e.c.i} ${e.name} (${e.c.what}) dead-lettered without a reason`);
      else if (d.code === ErrorCode.INTERNAL) wrong.push(`#${e.c.i} ${e.name} (${e.c.what}) dead-lettered as INTERNAL`);
      else if (e.valid && ['validation', 'malformed_json'].includes(String(d.reason)))
        wrong.push(`#${e.c.i} ${e.name} (${e.c.what}): valid, dead-lettered as ${String(d.reason)}`);
    }
    assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} dead letters went wrong`);

    // Every valid audit event is stored, once, whatever its neighbours were.
    const validAudit = sent.filter((e) => e.name === 'audit.#' && e.valid);
    const table = `"${schemas.audit!.schema}".audit_events`;
    const stored = await waitFor(
      async () => {
        const ids = new Set((await db.query(`SELECT event_id::text AS id FROM ${table}`)).rows.map((x) => String(x.id)));
        return validAudit.every((e) => ids.has(e.eventId!)) ? ids : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: `${validAudit.length} valid audit events stored` },
    );
    const count = Number((await db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);

    assert.deepEqual(
      services.map((s) => s.child.pid),
      pids,
    );
    for (const s of services) {
      assert.equal(s.child.exitCode, null, `${s.name} still running`);
      assert.equal((await fetch(s.url('/ready'))).status, 200, `${s.name} ready`);
    }
    const verify = await clients.get('ops')!.request('wallet.audit.verify', { i: -1, body: Buffer.from('{}'), headers: {}, what: 'verify' }, 60_000);
    assert.equal(verify?.ok, true, JSON.stringify(verify));
    const result = verify?.result as { valid: boolean; checked: number };
    assert.deepEqual({ valid: result.valid, checked: result.checked }, { valid: true, checked: count }, JSON.stringify(verify));
    if (process.env.DEBUG_E2E) {
      console.log({
        requests: requests.length,
        events: sent.length,
        validAudit: validAudit.length,
        stored: stored.size,
        dead: dead.size,
        mustDie: mustDie.size,
      });
    }
    await Promise.all([...clients.values()].map((c) => c.close()));
  });
});
