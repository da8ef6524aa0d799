import assert from 'node:assert/strict';
import { localEd25519Signer, solanaAddress, transactionSignature } from '@wallet-fleet/chains';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { backingServices, createSchemaName, createFleetVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import { Connection, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import type { ChannelModel } from 'amqplib';
import pg from 'pg';
import { caller, solTransfers, startWalletService, unusedChains, type WalletService, watchWalletEvents } from './support.js';

describe('wallet signing audit and truthful transfer answers', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let solana: SolanaRuntime;
  let service: WalletService;
  let client: Broker;
  let db: pg.Pool;
  let events: ChannelModel;
  const audit: Array<{ status: string; after: Record<string, unknown>; action: string; resource?: { id: string } }> = [];

  before(async () => {
    vhost = await createFleetVhost('wallet-audit');
    schema = await createSchemaName('wallet_audit');
    kms = await startKmsEmulator({ port: 0 });
    solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    const { databaseUrl } = await backingServices();
    events = await watchWalletEvents(vhost, ['audit.wallet.#'], (m) => audit.push(JSON.parse(m.content.toString())));
    service = await startWalletService(vhost, schema, { KMS_ENDPOINT: kms.endpoint, SOLANA_RPC_URL: solana.url, ...unusedChains });
    client = await caller(vhost, 'backend');
    db = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema.schema}` });
    // A database that refuses some audit rows (a full disk, a lost permission): the fault is real,
    // PostgreSQL raises it inside the transaction that writes the row.
    await db.query('CREATE TABLE refused_audit (status text PRIMARY KEY)');
    await db.query(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
      BEGIN
        IF NEW.routing_key LIKE 'audit.wallet.%' AND EXISTS (SELECT 1 FROM refused_audit WHERE status = NEW.payload::json->>'status') THEN
          RAISE EXCEPTION 'audit rows refused for this test' USING ERRCODE = 'disk_full';
        END IF;
        RETURN NEW;
      END $$`);
    await db.query('CREATE TRIGGER refuse_audit BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_audit()');
  });

  after(async () => {
    await db?.end();
    await client?.stop();
    await service?.stop();
    await events?.close();
    await solana?.stop();
    await kms?.stop();
    await vhost?.drop();
    await schema?.drop();
  });

  /** Audit rows with these statuses are refused by the database until `refuse()` is called again. */
  async function refuse(...statuses: string[]) {
    await db.query('DELETE FROM refused_audit');
    if (statuses.length) await db.query('INSERT INTO refused_audit SELECT unnest($1::text[])', [statuses]);
  }
  afterEach(() => refuse());

  const { lamports, funded, transfer } = solTransfers(() => ({ client, solana }));
  const eventsFor = (hash: string) => audit.filter((e) => e.after?.hash === hash);

  it('should report a transfer the chain accepted as accepted when its outcome cannot be audited then, and audit it on the next call with its key', async () => {
    const { userId, w, to } = await funded();
    await refuse('success');
    const sent = await transfer(userId, w.walletId, to, '3000000', 'audit-later');
    assert.deepEqual([sent.status, sent.source, sent.checkedOnChain], ['confirmed', 'chain', true]);
    assert.equal(await lamports(to), 3_000_000n);
    // The signing itself was audited before the transaction left, with its signature.
    await waitFor(() => eventsFor(sent.signature).some((e) => e.status === 'started'), { what: 'the signing audit event' });
    assert.equal((await db.query(`SELECT status FROM transfers WHERE wallet_id = $1`, [w.walletId])).rows[0].status, 'signed', 'outcome not recorded yet');

    await refuse();
    const again = await transfer(userId, w.walletId, to, '3000000', 'audit-later');
    assert.deepEqual(again, sent);
    await waitFor(() => eventsFor(sent.signature).some((e) => e.status === 'success'), { what: 'the outcome audit event' });
    assert.equal((await db.query(`SELECT status FROM transfers WHERE wallet_id = $1`, [w.walletId])).rows[0].status, 'confirmed');
    assert.equal(await lamports(to), 3_000_000n, 'not sent twice');
  });

  it('should audit every one of many concurrent signatures, and fail none of them for another call whose audit row was refused', async () => {
    // Audit rows of concurrent calls share transactions: a refused row in a shared batch must not
    // cost the other calls their signature or their audit event.
    const { userId, w, to } = await funded();
    const other = solanaAddress(localEd25519Signer().publicKey);
    const unsigned = (signer: string) =>
      new Transaction({ feePayer: new PublicKey(signer), recentBlockhash: '11111111111111111111111111111111' })
        .add(SystemProgram.transfer({ fromPubkey: new PublicKey(signer), toPubkey: new PublicKey(to), lamports: 1 }))
        .serialize({ requireAllSignatures: false, verifySignatures: false })
        .toString('base64');
    await refuse('failed');
    const outcomes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        client
          .request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: unsigned(i % 2 ? other : w.address) })
          .then((r) => ({ ok: true as const, tx: Transaction.from(Buffer.from(r.signedTransaction, 'base64')) }))
          .catch((e: unknown) => ({ ok: false as const, e })),
      ),
    );
    for (const [i, o] of outcomes.entries()) {
      if (i % 2) assert.ok(!o.ok && isFleetError(o.e, ErrorCode.VALIDATION_FAILED), `call ${i}: ${o.ok ? 'signed' : String(o.e)}`);
      else assert.ok(o.ok && o.tx.verifySignatures(), `call ${i}: ${o.ok ? 'bad signature' : String(o.e)}`);
    }
    const signatures = outcomes.flatMap((o) => (o.ok ? [transactionSignature(o.tx.serialize())] : []));
    assert.equal(new Set(signatures).size, 1, 'the same bytes signed twelve times: one signature');
    await waitFor(() => audit.filter((e) => e.action === 'wallet.sign' && e.status === 'success' && e.resource?.id === w.walletId).length === 12, {
      what: '12 success audit events',
    });
  });

  it('should send nothing and return no signature while the signing cannot be audited', async () => {
    const { userId, w, to } = await funded();
    await refuse('started', 'success');
    await assert.rejects(transfer(userId, w.walletId, to, '4000000'), (e: unknown) => isFleetError(e, ErrorCode.UNAVAILABLE) && e.retryable);
    await assert.rejects(transfer(userId, w.walletId, to, '4000000', 'no-audit'), (e: unknown) => isFleetError(e, ErrorCode.UNAVAILABLE));
    const { blockhash } = await new Connection(solana.url, 'confirmed').getLatestBlockhash();
    const unsigned = new Transaction({ feePayer: new PublicKey(w.address), recentBlockhash: blockhash })
      .add(SystemProgram.transfer({ fromPubkey: new PublicKey(w.address), toPubkey: new PublicKey(to), lamports: 1 }))
      .serialize({ requireAllSignatures: false, verifySignatures: false })
      .toString('base64');
    await assert.rejects(client.request('wallet.transaction.sign', { userId, walletId: w.walletId, transaction: unsigned }), (e: unknown) =>
      isFleetError(e, ErrorCode.UNAVAILABLE),
    );
    assert.equal(await lamports(to), 0n, 'nothing reached the chain');

    // Once audit rows are accepted again, the same calls go through and are audited.
    await refuse();
    const sent = await transfer(userId, w.walletId, to, '4000000', 'no-audit');
    assert.equal(await lamports(to), 4_000_000n);
    await waitFor(() => ['started', 'success'].every((s) => eventsFor(sent.signature).some((e) => e.status === s)), { what: 'both audit events' });
  });

  it('should audit a failed transfer attempt with its error', async () => {
    const { userId, w, to } = await funded();
    await assert.rejects(transfer(userId, w.walletId, to, '999000000000'), (e: unknown) => isFleetError(e, ErrorCode.INSUFFICIENT_FUNDS));
    await waitFor(
      () =>
        audit.some(
          (e) =>
            e.action === 'wallet.transferSol' &&
            e.status === 'failed' &&
            e.after.amount === '999000000000' &&
            (e as { error?: { code: string } }).error?.code === 'INSUFFICIENT_FUNDS',
        ),
      { what: 'the failed attempt audit event' },
    );
  });

  it('should answer a repeated confirmed transfer from its record, without asking the chain or writing an audit row', async () => {
    const { userId, w, to } = await funded();
    const first = await transfer(userId, w.walletId, to, '2000000', 'repeat');
    assert.deepEqual([first.status, first.source, first.checkedOnChain], ['confirmed', 'chain', true]);
    // Every outbox row (audit events included) takes a number from this sequence.
    const written = async () => (await db.query<{ n: string }>('SELECT last_value::text AS n FROM outbox_id_seq')).rows[0]!.n;
    const rows = await written();
    const again = await transfer(userId, w.walletId, to, '2000000', 'repeat');
    assert.deepEqual(again, { signature: first.signature, status: 'confirmed', source: 'record', checkedOnChain: false });
    assert.equal(await written(), rows, 'no audit row for a repeat');

    // A record the chain has never seen (what a reset runtime leaves) is answered the same way: the
    // chain is not asked, and nothing is sent again.
    const { signedTransaction } = await client.request('wallet.transaction.sign', {
      userId,
      walletId: w.walletId,
      transaction: new Transaction({ feePayer: new PublicKey(w.address), recentBlockhash: '11111111111111111111111111111111' })
        .add(SystemProgram.transfer({ fromPubkey: new PublicKey(w.address), toPubkey: new PublicKey(to), lamports: 5_000_000 }))
        .serialize({ requireAllSignatures: false, verifySignatures: false })
        .toString('base64'),
    });
    const bytes = Buffer.from(signedTransaction, 'base64');
    await db.query(
      `INSERT INTO transfers (wallet_id, idempotency_key, recipient, amount, status, signed_tx, signature) VALUES ($1, 'before-reset', $2, 5000000, 'confirmed', $3, $4)`,
      [w.walletId, to, bytes, transactionSignature(bytes)],
    );
    const before = await lamports(to);
    const rowsBeforeReplay = await written();
    const replay = await transfer(userId, w.walletId, to, '5000000', 'before-reset');
    assert.deepEqual(replay, { signature: transactionSignature(bytes), status: 'confirmed', source: 'record', checkedOnChain: false });
    assert.equal(await lamports(to), before, 'nothing sent again');
    assert.equal(await written(), rowsBeforeReplay, 'no audit row for a repeat');
    assert.notEqual(rowsBeforeReplay, rows, 'the signing in between was audited: the count moves when a row is written');
  });
});
