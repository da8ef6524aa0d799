// Approvals above a policy threshold, against the real broker (approvers are broker users of their
// own), database, KMS emulator and Solana runtime: what waits for approval is not signed (the KMS
// emulator's signature count does not move), and what is approved is executed once.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { localEd25519Signer, solanaAddress } from '@wallet-fleet/chains';
import { type Approval, ErrorCode } from '@wallet-fleet/contracts';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import { PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import type { ChannelModel } from 'amqplib';
import pg from 'pg';
import { caller, refusal, solTransfers, startWalletService, unusedChains, type WalletService, watchWalletEvents } from './support.js';

/**
 * Broker users beside the fleet's own: two approvers, `teller` who both requests (backend) and
 * approves, and `stranger`, who has an approver's broker permissions but whom the service does not
 * know as an approver (not in BROKER_USER_ROLES).
 */
const USERS = { 'approver-1': ['approver'], 'approver-2': ['approver'], teller: ['backend', 'approver'], stranger: ['approver'] };
const BROKER_USER_ROLES = 'approver-1:approver,approver-2:approver,teller:backend,teller:approver';
const THRESHOLD = 100_000_000n; // 0.1 SOL, fees included
const ABOVE = '200000000';

interface WalletEvent {
  routingKey: string;
  body: Approval & { action?: string; actor?: { id: string }; resource?: { id: string } };
}

/** Starts the fleet pieces an approvals suite needs; `env` adds to the wallet service's. */
function approvalsFleet(prefix: string, env: Record<string, string> = {}) {
  const parts = {} as {
    vhost: TestVhost;
    schema: TestSchema;
    kms: Awaited<ReturnType<typeof startKmsEmulator>>;
    solana: SolanaRuntime;
    service: WalletService;
    backend: Broker;
    ops: Broker;
    approvers: Record<'approver-1' | 'approver-2' | 'teller' | 'stranger', Broker>;
    events: ChannelModel;
    kmsSignatures: number;
    seen: WalletEvent[];
  };
  parts.kmsSignatures = 0;
  parts.seen = [];
  before(async () => {
    parts.vhost = await createFleetVhost(prefix, { users: USERS });
    parts.schema = await createSchemaName(prefix.replace(/-/g, '_'));
    parts.kms = await startKmsEmulator({
      port: 0,
      intercept: (method, _req, res) => {
        if (method === 'AsymmetricSign') parts.kmsSignatures++;
        return res;
      },
    });
    parts.solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    parts.events = await watchWalletEvents(parts.vhost, ['wallet.approval.#', 'audit.wallet.approval.#'], (m) =>
      parts.seen.push({ routingKey: m.fields.routingKey, body: JSON.parse(m.content.toString()) }),
    );
    parts.service = await startWalletService(parts.vhost, parts.schema, {
      KMS_ENDPOINT: parts.kms.endpoint,
      SOLANA_RPC_URL: parts.solana.url,
      ...unusedChains,
      SIGN_RATE_PER_MINUTE: '1000',
      BROKER_USER_ROLES,
      ...env,
    });
    parts.backend = await caller(parts.vhost, 'backend');
    parts.ops = await caller(parts.vhost, 'ops');
    parts.approvers = {
      'approver-1': await caller(parts.vhost, 'approver-1'),
      'approver-2': await caller(parts.vhost, 'approver-2'),
      teller: await caller(parts.vhost, 'teller'),
      stranger: await caller(parts.vhost, 'stranger'),
    };
  });
  after(async () => {
    for (const b of [parts.backend, parts.ops, ...Object.values(parts.approvers ?? {})]) await b?.stop();
    await parts.service?.stop();
    await parts.events?.close();
    await parts.solana?.stop();
    await parts.kms?.stop();
    await parts.vhost?.drop();
    await parts.schema?.drop();
  });
  return parts;
}

describe('approvals: above a threshold, N distinct approvers, executed once', function () {
  this.timeout(90_000);
  const fleet = approvalsFleet('wallet-approvals');
  const sol = solTransfers(() => ({ client: fleet.backend, solana: fleet.solana }));

  /** A funded SOL wallet whose policy asks `approvers` (default 2) approvers above THRESHOLD. */
  async function heldWallet(approvers?: number) {
    const f = await sol.funded();
    await fleet.ops.request('wallet.policy.set', {
      scope: 'wallet',
      walletId: f.w.walletId,
      rules: { approvalAbove: { SOL: THRESHOLD.toString() }, ...(approvers ? { approvers } : {}) },
    });
    return f;
  }
  /** A transfer above the threshold, as `client` asks for it: the APPROVAL_REQUIRED error. */
  async function held(f: Awaited<ReturnType<typeof heldWallet>>, key = randomUUID(), client = fleet.backend) {
    const e = await refusal(
      client.request(
        'wallet.transaction.transferSol',
        { userId: f.userId, walletId: f.w.walletId, recipient: f.to, amount: ABOVE, idempotencyKey: key },
        { timeoutMs: 30_000 },
      ),
    );
    assert.equal(e.code, ErrorCode.APPROVAL_REQUIRED, e.message);
    return e.details!.approvalId as string;
  }
  const approve = (who: keyof typeof fleet.approvers, approvalId: string) =>
    fleet.approvers[who].request('wallet.approval.approve', { approvalId }, { timeoutMs: 60_000 });
  const completedEvents = (approvalId: string) => fleet.seen.filter((e) => e.routingKey === 'wallet.approval.completed' && e.body.approvalId === approvalId);

  it('should answer APPROVAL_REQUIRED above the threshold, sign nothing, and give a repeated request the same approvalId', async () => {
    const f = await heldWallet();
    // Below the threshold nothing changes: signed and sent at once.
    await sol.transfer(f.userId, f.w.walletId, f.to, '1000000');
    const signatures = fleet.kmsSignatures;
    const key = randomUUID();
    const approvalId = await held(f, key);
    assert.equal(await held(f, key), approvalId, 'the same idempotency key names the same request');
    assert.notEqual(await held(f), approvalId, 'another key is another request');
    assert.equal(fleet.kmsSignatures, signatures, 'nothing was signed');
    assert.equal(await sol.lamports(f.to), 1_000_000n);

    const a = await fleet.ops.request('wallet.approval.get', { approvalId });
    assert.equal(a.status, 'pending');
    assert.equal(a.required, 2);
    assert.equal(a.requestedBy, 'backend');
    assert.deepEqual(a.request, { userId: f.userId, walletId: f.w.walletId, recipient: f.to, amount: ABOVE, idempotencyKey: key });
    assert.equal((a.rule as { asset: string }).asset, 'SOL');
    await waitFor(() => fleet.seen.find((e) => e.routingKey === 'wallet.approval.requested' && e.body.approvalId === approvalId), {
      timeoutMs: 5000,
      what: 'wallet.approval.requested',
    });
    const listed = await fleet.approvers['approver-1'].request('wallet.approval.list', { userId: f.userId, status: 'pending' });
    assert.equal(listed.items.length, 2);
  });

  /** The transfer `held` asks for, with `key`, as the backend repeats it. */
  const repeat = (f: Awaited<ReturnType<typeof heldWallet>>, key: string) =>
    fleet.backend.request(
      'wallet.transaction.transferSol',
      { userId: f.userId, walletId: f.w.walletId, recipient: f.to, amount: ABOVE, idempotencyKey: key },
      { timeoutMs: 30_000 },
    );

  it('should execute a transfer once after two distinct approvals: the balance moves once and wallet.approval.completed says so', async () => {
    const f = await heldWallet();
    const key = randomUUID();
    const approvalId = await held(f, key);
    const signatures = fleet.kmsSignatures;

    const first = await approve('approver-1', approvalId);
    assert.equal(first.status, 'pending');
    assert.deepEqual(
      first.approvedBy.map((x) => x.user),
      ['approver-1'],
    );
    assert.equal(await sol.lamports(f.to), 0n, 'one approval is not enough');
    assert.equal(fleet.kmsSignatures, signatures);

    const second = await approve('approver-2', approvalId);
    assert.equal(second.status, 'completed');
    assert.equal(await sol.lamports(f.to), BigInt(ABOVE));
    assert.equal(fleet.kmsSignatures, signatures + 1, 'signed once');
    assert.equal((second.result as { status: string }).status, 'confirmed');

    // Approving again, or repeating the original request, executes nothing more.
    const again = await refusal(approve('approver-1', approvalId));
    assert.equal(again.code, ErrorCode.APPROVAL_CLOSED);
    assert.equal(again.details!.status, 'completed');
    const repeated = await repeat(f, key);
    assert.deepEqual(repeated, { ...(second.result as object), source: 'record', checkedOnChain: false }, 'the repeated request answers the executed transfer');
    assert.equal(await sol.lamports(f.to), BigInt(ABOVE));
    assert.equal(fleet.kmsSignatures, signatures + 1, 'the repeat signed nothing');

    const done = await waitFor(() => completedEvents(approvalId)[0], { timeoutMs: 5000, what: 'wallet.approval.completed' });
    assert.equal(done.body.status, 'completed');
    assert.equal((done.body.result as { signature: string }).signature, (second.result as { signature: string }).signature);
    const audits = await waitFor(
      () => {
        const a = fleet.seen.filter((e) => e.routingKey === 'audit.wallet.approval.approve' && e.body.resource?.id === approvalId);
        return a.length === 2 ? a : undefined;
      },
      { timeoutMs: 5000, what: 'two approve audit events' },
    );
    assert.deepEqual(audits.map((a) => a.body.actor?.id).sort(), ['approver-1', 'approver-2']);
    assert.equal(completedEvents(approvalId).length, 1);
  });

  it('should execute once when approvals arrive concurrently', async () => {
    const f = await heldWallet();
    const approvalId = await held(f);
    const signatures = fleet.kmsSignatures;
    await Promise.allSettled([
      approve('approver-1', approvalId),
      approve('approver-2', approvalId),
      approve('approver-1', approvalId),
      approve('approver-2', approvalId),
    ]);
    const a = await fleet.ops.request('wallet.approval.get', { approvalId });
    assert.equal(a.status, 'completed');
    assert.equal(await sol.lamports(f.to), BigInt(ABOVE));
    assert.equal(fleet.kmsSignatures, signatures + 1, 'signed once');
    await waitFor(() => completedEvents(approvalId)[0], { timeoutMs: 5000, what: 'wallet.approval.completed' });
    assert.equal(completedEvents(approvalId).length, 1);
  });

  it('should execute, once, a request whose last approval was committed just before a crash, when that approve is redelivered', async () => {
    const f = await heldWallet();
    const approvalId = await held(f);
    await approve('approver-1', approvalId);
    // What the process commits for the second approval before it executes, and no more: the state a
    // crash between approval and execution leaves (written as the service's own database role).
    const db = new pg.Client({ connectionString: fleet.schema.runtimeUrl, options: `-c search_path=${fleet.schema.schema}` });
    await db.connect();
    try {
      await db.query(`INSERT INTO approval_signoffs (approval_id, approver) VALUES ($1, 'approver-2')`, [approvalId]);
      await db.query(`UPDATE approvals SET status = 'approved', decided_at = now() WHERE approval_id = $1`, [approvalId]);
    } finally {
      await db.end();
    }
    const signatures = fleet.kmsSignatures;
    assert.equal((await fleet.ops.request('wallet.approval.get', { approvalId })).status, 'approved');
    assert.equal(await sol.lamports(f.to), 0n);

    // The approve comes again (redelivered after the crash, or repeated by its approver): it executes.
    const redelivered = await approve('approver-2', approvalId);
    assert.equal(redelivered.status, 'completed');
    assert.deepEqual(
      redelivered.approvedBy.map((x) => x.user),
      ['approver-1', 'approver-2'],
    );
    const later = await Promise.allSettled([approve('approver-1', approvalId), approve('approver-2', approvalId)]);
    assert.deepEqual(
      later.map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'executed again')),
      [ErrorCode.APPROVAL_CLOSED, ErrorCode.APPROVAL_CLOSED],
    );
    assert.equal(await sol.lamports(f.to), BigInt(ABOVE), 'sent once');
    assert.equal(fleet.kmsSignatures, signatures + 1, 'signed once');
  });

  it('should check the policy again at execution: a cap set after the request refuses it, and the approval ends failed', async () => {
    const f = await heldWallet();
    const approvalId = await held(f);
    await fleet.ops.request('wallet.policy.set', {
      scope: 'wallet',
      walletId: f.w.walletId,
      rules: { approvalAbove: { SOL: THRESHOLD.toString() }, maxPerTransaction: { SOL: THRESHOLD.toString() } },
    });
    const signatures = fleet.kmsSignatures;
    await approve('approver-1', approvalId);
    const done = await approve('approver-2', approvalId);
    assert.equal(done.status, 'failed');
    assert.equal(done.error?.code, ErrorCode.POLICY_DENIED);
    assert.equal(fleet.kmsSignatures, signatures, 'nothing signed');
    assert.equal(await sol.lamports(f.to), 0n);
    const event = await waitFor(() => completedEvents(approvalId)[0], { timeoutMs: 5000, what: 'wallet.approval.completed' });
    assert.equal(event.body.status, 'failed');
  });

  it('should refuse a requester approving its own request, even when it holds the approver role', async () => {
    const f = await heldWallet();
    const approvalId = await held(f, randomUUID(), fleet.approvers.teller);
    const e = await refusal(approve('teller', approvalId));
    assert.equal(e.code, ErrorCode.FORBIDDEN);
    const a = await fleet.ops.request('wallet.approval.get', { approvalId });
    assert.equal(a.requestedBy, 'teller');
    assert.equal(a.status, 'pending');
    assert.deepEqual(a.approvedBy, []);
  });

  it('should count one approver approving twice once', async () => {
    const f = await heldWallet();
    const approvalId = await held(f);
    const signatures = fleet.kmsSignatures;
    await approve('approver-1', approvalId);
    const twice = await approve('approver-1', approvalId);
    assert.equal(twice.status, 'pending');
    assert.equal(twice.approvedBy.length, 1);
    assert.equal(fleet.kmsSignatures, signatures);
    assert.equal(await sol.lamports(f.to), 0n);
  });

  it('should end a request rejected by any approver: nothing signed, no approval after it', async () => {
    const f = await heldWallet();
    const key = randomUUID();
    const approvalId = await held(f, key);
    const signatures = fleet.kmsSignatures;
    await approve('approver-1', approvalId);
    const rejected = await fleet.approvers['approver-2'].request('wallet.approval.reject', { approvalId, reason: 'unknown recipient' });
    assert.equal(rejected.status, 'rejected');
    assert.deepEqual({ user: rejected.rejectedBy?.user, reason: rejected.rejectedBy?.reason }, { user: 'approver-2', reason: 'unknown recipient' });
    const late = await refusal(approve('approver-2', approvalId));
    assert.equal(late.code, ErrorCode.APPROVAL_CLOSED);
    assert.equal(late.details!.status, 'rejected');
    const repeated = await refusal(repeat(f, key));
    assert.equal(repeated.code, ErrorCode.APPROVAL_CLOSED, 'a repeat of the rejected request is not held again');
    assert.deepEqual([repeated.details!.approvalId, repeated.details!.status], [approvalId, 'rejected']);
    assert.equal(fleet.kmsSignatures, signatures);
    assert.equal(await sol.lamports(f.to), 0n);
    await waitFor(() => fleet.seen.find((e) => e.routingKey === 'wallet.approval.rejected' && e.body.approvalId === approvalId), {
      timeoutMs: 5000,
      what: 'wallet.approval.rejected',
    });
    await waitFor(() => fleet.seen.find((e) => e.routingKey === 'audit.wallet.approval.reject' && e.body.resource?.id === approvalId), {
      timeoutMs: 5000,
      what: 'the reject audit event',
    });
  });

  it('should refuse FORBIDDEN an approval from a caller without the approver role', async () => {
    const f = await heldWallet();
    const approvalId = await held(f);
    // The broker itself refuses the backend's publish (topic permissions from the catalogue) ...
    const byBackend = await refusal(fleet.backend.request('wallet.approval.approve', { approvalId }));
    assert.equal(byBackend.code, ErrorCode.FORBIDDEN, byBackend.message);
    assert.equal(byBackend.retryable, false);
    assert.match(
      (byBackend.details!.brokerRefusal as { text: string }).text,
      /ACCESS_REFUSED - access to topic 'wallet\.approval\.approve' .* refused for user 'backend'/,
    );
    // ... and the service refuses a broker user it does not know as an approver.
    assert.equal((await refusal(approve('stranger', approvalId))).code, ErrorCode.FORBIDDEN);
    const a = await fleet.ops.request('wallet.approval.get', { approvalId });
    assert.deepEqual(a.approvedBy, []);
  });

  it('should hold a raw signing above the threshold and keep its signature on the approval once approved', async () => {
    const f = await heldWallet();
    const from = new PublicKey(f.w.address);
    const tx = new Transaction({ feePayer: from, recentBlockhash: '4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi' })
      .add(SystemProgram.transfer({ fromPubkey: from, toPubkey: new PublicKey(solanaAddress(localEd25519Signer().publicKey)), lamports: 500_000_000 }))
      .serialize({ requireAllSignatures: false, verifySignatures: false })
      .toString('base64');
    const signatures = fleet.kmsSignatures;
    const sign = () => refusal(fleet.backend.request('wallet.transaction.sign', { userId: f.userId, walletId: f.w.walletId, transaction: tx }));
    const e = await sign();
    assert.equal(e.code, ErrorCode.APPROVAL_REQUIRED);
    const approvalId = e.details!.approvalId as string;
    assert.equal((await sign()).details!.approvalId, approvalId, 'the same bytes are the same request');
    assert.equal(fleet.kmsSignatures, signatures);

    await approve('approver-2', approvalId);
    const done = await approve('approver-1', approvalId);
    assert.equal(done.status, 'completed');
    assert.equal(fleet.kmsSignatures, signatures + 1);
    const signed = Transaction.from(Buffer.from((done.result as { signedTransaction: string }).signedTransaction, 'base64'));
    assert.ok(signed.verifySignatures(), 'signed by the wallet');
    const got = await fleet.approvers['approver-1'].request('wallet.approval.get', { approvalId });
    assert.deepEqual(got.result, done.result);
    const repeated = await fleet.backend.request('wallet.transaction.sign', { userId: f.userId, walletId: f.w.walletId, transaction: tx });
    assert.deepEqual(repeated, done.result, 'the same bytes, once approved and signed, answer that signature');
    assert.equal(fleet.kmsSignatures, signatures + 1, 'signed once');
    const event = await waitFor(() => completedEvents(approvalId)[0], { timeoutMs: 5000, what: 'wallet.approval.completed' });
    assert.deepEqual(event.body.result, done.result);
  });
});

describe('approvals: expiry', function () {
  this.timeout(60_000);
  const fleet = approvalsFleet('wallet-approvals-expiry', { APPROVAL_TTL_MS: '4000' });
  const sol = solTransfers(() => ({ client: fleet.backend, solana: fleet.solana }));

  it('should show an unapproved request as expired after APPROVAL_TTL_MS and refuse approving it', async () => {
    const f = await sol.funded();
    await fleet.ops.request('wallet.policy.set', { scope: 'wallet', walletId: f.w.walletId, rules: { approvalAbove: { SOL: THRESHOLD.toString() } } });
    const e = await refusal(sol.transfer(f.userId, f.w.walletId, f.to, ABOVE, randomUUID()));
    assert.equal(e.code, ErrorCode.APPROVAL_REQUIRED);
    const approvalId = e.details!.approvalId as string;
    await fleet.approvers['approver-1'].request('wallet.approval.approve', { approvalId });
    await waitFor(
      async () => (await fleet.ops.request('wallet.approval.list', { userId: f.userId, status: 'expired' })).items.find((a) => a.approvalId === approvalId),
      { timeoutMs: 15_000, what: 'the request listed as expired' },
    );
    const late = await refusal(fleet.approvers['approver-2'].request('wallet.approval.approve', { approvalId }));
    assert.equal(late.code, ErrorCode.APPROVAL_CLOSED);
    assert.equal(late.details!.status, 'expired');
    assert.equal(await sol.lamports(f.to), 0n);
  });
});
