import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  anyOperationErrors,
  AuditEvent,
  ErrorCode,
  SERVICE_IN_KEY,
  FleetError,
  buildAsyncApi,
  eventNameOf,
  events,
  fieldErrors,
  isFleetError,
  mayCall,
  mayPublish,
  operations,
  producersOf,
  replySchema,
  roles,
} from '@wallet-fleet/contracts';
import { z } from 'zod';

describe('contracts', () => {
  it('should keep docs/asyncapi.json in step with the schemas (run `pnpm asyncapi` after a change)', () => {
    const file = fileURLToPath(new URL('../../../docs/asyncapi.json', import.meta.url));
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    const committed = JSON.parse(readFileSync(file, 'utf8'));
    assert.deepEqual(committed, JSON.parse(JSON.stringify(buildAsyncApi(pkg.version))));
  });

  it('should generate a document the AsyncAPI 3 parser accepts without errors or warnings', async function () {
    this.timeout(20_000);
    const { Parser } = await import('@asyncapi/parser');
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(buildAsyncApi('0.0.0')));
    const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
    assert.deepEqual(problems, []);
    assert.ok(document);
    assert.equal(document.version(), '3.0.0');
    assert.ok(document.operations().length >= 12);
  });

  it('should document every fixed operation and event name', () => {
    for (const op of [
      'wallet.management.create',
      'wallet.management.list',
      'wallet.management.get',
      'wallet.management.setActive',
      'wallet.balance.get',
      'wallet.balance.getTokens',
      'wallet.transaction.transfer',
      'wallet.transaction.transferSol',
      'wallet.transaction.sign',
      'wallet.provisioning.status',
      'wallet.audit.query',
      'wallet.audit.verify',
    ])
      assert.ok(op in operations, op);
    for (const ev of [
      'kyc.approved',
      'wallet.created',
      'wallet.provisioning.completed',
      'wallet.provisioning.failed',
      'deposit.received',
      'deposit.credited',
      'deposit.failed',
    ])
      assert.ok(ev in events, ev);
    const doc = buildAsyncApi('0') as { channels: Record<string, { address: string | null }> };
    const addresses = Object.values(doc.channels).map((c) => c.address);
    assert.ok(addresses.includes('wallet.audit.query'));
    assert.ok(addresses.includes('audit.#'));
  });

  it('should list for every operation the error codes it may reply with, known codes only, in the AsyncAPI document too', () => {
    const doc = buildAsyncApi('0') as { operations: Record<string, { title: string; action: string; description?: string; 'x-errors'?: string[] }> };
    const known = new Set<string>(Object.values(ErrorCode));
    for (const [name, op] of Object.entries(operations)) {
      const errors: readonly string[] = op.errors;
      assert.equal(new Set(errors).size, errors.length, `${name}: a code listed twice`);
      for (const code of errors) assert.ok(known.has(code), `${name}: ${code} is not an error code`);
      for (const code of anyOperationErrors) assert.ok(errors.includes(code), `${name}: ${code} (any operation may answer it) is missing`);
      const documented = Object.values(doc.operations).find((o) => o.action === 'send' && o.title === name);
      assert.deepEqual(documented?.['x-errors'], [...errors], name);
      for (const code of errors) assert.ok(documented?.description?.includes(`\`${code}\``), `${name}: ${code} not in the description`);
    }
    assert.ok((operations['wallet.management.get'].errors as readonly string[]).includes('WALLET_NOT_FOUND'));
  });

  it('should map audit routing keys to the audit event schema and nothing else', () => {
    assert.equal(eventNameOf('audit.wallet.create'), 'audit.#');
    assert.equal(eventNameOf('audit.provisioning.wallet.create'), 'audit.#');
    assert.equal(eventNameOf('wallet.created'), 'wallet.created');
    assert.equal(eventNameOf('audit'), undefined);
    assert.equal(eventNameOf('something.else'), undefined);
  });

  it('should reject an audit event with a missing field or an unknown one, naming the field', () => {
    const good = {
      eventId: '0b6b8a52-3c5c-4a57-9a7e-0c1b1f3f0a10',
      occurredAt: '2026-11-23T10:00:00.000Z',
      actor: { type: 'service', id: 'wallet' },
      action: 'wallet.create',
      resource: { type: 'wallet', id: 'w1' },
      status: 'success',
    };
    assert.ok(AuditEvent.safeParse(good).success);
    const missing = AuditEvent.safeParse({ ...good, resource: { type: 'wallet' } });
    assert.ok(!missing.success);
    assert.deepEqual(
      fieldErrors(missing.error).map((f) => f.path),
      ['resource.id'],
    );
    const extra = AuditEvent.safeParse({ ...good, privateKey: 'x' });
    assert.ok(!extra.success);
    // PostgreSQL text refuses NUL: such an event must fail validation, not a whole batch insert.
    const nul = AuditEvent.safeParse({ ...good, action: 'wallet.\u0000create' });
    assert.ok(!nul.success);
    assert.deepEqual(
      fieldErrors(nul.error).map((f) => f.path),
      ['action'],
    );
  });

  it('should refuse at the edge, naming the field, what PostgreSQL cannot keep (lone surrogates, NUL in JSON, year 0000, deep nesting)', () => {
    const good = {
      eventId: '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b',
      occurredAt: '2026-11-23T10:00:00.000Z',
      actor: { type: 'service', id: 'wallet' },
      action: 'wallet.create',
      resource: { type: 'wallet', id: 'w1' },
      status: 'success',
    };
    const paths = (v: unknown) => {
      const r = AuditEvent.safeParse(v);
      return r.success ? [] : fieldErrors(r.error).map((f) => f.path);
    };
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 5000; i++) deep = { d: deep };
    assert.deepEqual(paths({ ...good, resource: { type: 'wallet', id: 'w\uD800' } }), ['resource.id']);
    assert.deepEqual(paths({ ...good, after: { note: 'a\uDC00b' } }), ['after.note']);
    assert.deepEqual(paths({ ...good, before: { list: ['ok', 'bad\u0000'] } }), ['before.list.1']);
    assert.deepEqual(paths({ ...good, after: { 'k\u0000': 1 } }), ['after.k\u0000']);
    assert.deepEqual(paths({ ...good, occurredAt: '0000-01-01T00:00:00Z' }), ['occurredAt']);
    assert.deepEqual(paths({ ...good, error: { code: 'X', message: 'm\u0000' } }), ['error.message']);
    const tooDeep = paths({ ...good, after: deep });
    assert.equal(tooDeep.length, 1);
    assert.match(tooDeep[0]!, /^after(\.d)+$/);
    // What is fine stays fine: a surrogate pair (an emoji), nesting within the bound.
    assert.deepEqual(paths({ ...good, resource: { type: 'wallet', id: 'w\uD83D\uDE00' }, after: { a: { b: { c: [1, 'x'] } } } }), []);
  });

  it('should give errors a retryable default per code and keep an explicit choice', () => {
    assert.equal(new FleetError(ErrorCode.UNAVAILABLE, 'down').retryable, true);
    assert.equal(new FleetError(ErrorCode.INTERNAL, 'boom').retryable, false);
    assert.equal(FleetError.retryable(ErrorCode.INTERNAL, 'safe to retry').retryable, true);
    const e = FleetError.fromBody({ code: 'NOT_FOUND', message: 'x'.repeat(2000), retryable: false });
    assert.ok(isFleetError(e, ErrorCode.NOT_FOUND));
    assert.ok(e.message.length <= 256);
  });

  it("should name the issue's callers and producers: transactions by backend only, wallet.created by wallet only, audit keys by the service they name", () => {
    assert.deepEqual(operations['wallet.transaction.sign'].callers, ['backend']);
    assert.deepEqual(operations['wallet.transaction.transferSol'].callers, ['backend']);
    assert.deepEqual([...operations['wallet.management.create'].callers].sort(), ['backend', 'provisioning']);
    assert.ok(mayCall('provisioning', 'wallet.management.create'));
    assert.ok(!mayCall('webhooks', 'wallet.transaction.sign'));
    assert.ok(!mayCall(undefined, 'wallet.audit.query'));
    assert.deepEqual(producersOf('wallet.created'), ['wallet']);
    assert.deepEqual(producersOf('kyc.approved'), ['backend']);
    assert.deepEqual(producersOf('audit.wallet.create'), ['wallet']);
    assert.deepEqual(producersOf('audit.nobody.create'), []);
    assert.deepEqual(producersOf('not.an.event'), []);
    assert.ok(mayPublish('webhooks', 'audit.webhooks.deposit.credit'));
    assert.ok(!mayPublish('webhooks', 'audit.wallet.create'));
    assert.ok(!mayPublish('webhooks', 'wallet.created'));
    assert.ok(!mayPublish(undefined, 'wallet.created'));
  });

  it('should give every operation at least one caller and every event at least one producer, all of them known roles', () => {
    for (const [name, op] of Object.entries(operations)) {
      assert.ok(op.callers.length > 0, name);
      for (const c of op.callers) assert.ok((roles as readonly string[]).includes(c), `${name}: ${c}`);
    }
    for (const [name, ev] of Object.entries(events)) {
      assert.ok(ev.producers.length > 0, name);
      for (const p of ev.producers) assert.ok(p === SERVICE_IN_KEY || (roles as readonly string[]).includes(p), `${name}: ${p}`);
    }
  });

  it('should show callers and producers in the AsyncAPI document and list FORBIDDEN among the error codes', () => {
    const doc = buildAsyncApi('0') as { info: { description: string }; operations: Record<string, { 'x-callers'?: string[]; 'x-producers'?: string[] }> };
    assert.deepEqual(doc.operations.wallet_transaction_sign?.['x-callers'], ['backend']);
    assert.deepEqual(doc.operations.event_wallet_created?.['x-producers'], ['wallet']);
    assert.match(doc.info.description, /`FORBIDDEN`/);
    assert.equal(new FleetError(ErrorCode.FORBIDDEN, 'no').retryable, false);
  });

  it('should accept only well-formed replies', () => {
    const reply = replySchema(z.object({ n: z.number() }));
    assert.ok(reply.safeParse({ ok: true, result: { n: 1 } }).success);
    assert.ok(reply.safeParse({ ok: false, error: { code: 'INTERNAL', message: 'm', retryable: false } }).success);
    assert.ok(!reply.safeParse({ ok: false, error: { code: 'INTERNAL' } }).success);
  });
});
