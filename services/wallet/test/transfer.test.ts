import assert from 'node:assert/strict';
import { transactionSignature } from '@wallet-fleet/chains';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { backingServices, createSchemaName, createFleetVhost, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import { Connection, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import pg from 'pg';
import type { OutboxWriter } from '../src/ports.js';
import { createTransferStore } from '../src/store/transfer-store.js';
import { caller, solTransfers, startWalletService, unusedChains, type WalletService } from './support.js';

describe('wallet.transaction.transferSol with an idempotency key: sent at most once', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let solana: SolanaRuntime;
  let service: WalletService;
  let client: Broker;
  let db: pg.Pool;

  before(async () => {
    vhost = await createFleetVhost('wallet-transfer');
    schema = await createSchemaName('wallet_transfer');
    kms = await startKmsEmulator({ port: 0 });
    solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    const { databaseUrl } = await backingServices();
    service = await startWalletService(vhost, schema, { KMS_ENDPOINT: kms.endpoint, SOLANA_RPC_URL: solana.url, ...unusedChains });
    client = await caller(vhost, 'backend');
    db = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema.schema}` });
  });

  after(async () => {
    await db?.end();
    await client?.stop();
    await service?.stop();
    await solana?.stop();
    await kms?.stop();
    await vhost?.drop();
    await schema?.drop();
  });

  const { lamports, funded, transfer } = solTransfers(() => ({ client, solana }));

  it('should answer a repeated and five concurrent calls with the same key with one transfer', async () => {
    const { userId, w, to } = await funded();
    const first = await transfer(userId, w.walletId, to, '1000000', 'pay-1');
    const again = await transfer(userId, w.walletId, to, '1000000', 'pay-1');
    assert.deepEqual(again, { ...first, source: 'record', checkedOnChain: false });
    const burst = await Promise.all(Array.from({ length: 5 }, () => transfer(userId, w.walletId, to, '2000000', 'pay-2')));
    assert.equal(new Set(burst.map((b) => b.signature)).size, 1);
    assert.equal(await lamports(to), 3_000_000n, 'one transfer per key');
    await assert.rejects(transfer(userId, w.walletId, to, '999', 'pay-1'), (e: unknown) => isFleetError(e, ErrorCode.IDEMPOTENCY_CONFLICT));
  });

  it('should not send again after a crash between the send and its record (the chain is asked)', async () => {
    const { userId, w, to } = await funded();
    const first = await transfer(userId, w.walletId, to, '5000000', 'crash-after-send');
    // What a process killed right after sending leaves: the signed bytes, not the confirmation.
    await db.query(`UPDATE transfers SET status = 'signed' WHERE wallet_id = $1 AND idempotency_key = 'crash-after-send'`, [w.walletId]);
    const retry = await transfer(userId, w.walletId, to, '5000000', 'crash-after-send');
    assert.equal(retry.signature, first.signature);
    assert.equal(await lamports(to), 5_000_000n);
    assert.equal((await db.query(`SELECT status FROM transfers WHERE wallet_id = $1`, [w.walletId])).rows[0].status, 'confirmed');
  });

  /** A transfer from the wallet signed through the service (as if signed before a crash), not sent. */
  async function signedNotSent(userId: string, walletId: string, from: string, to: string, amount: number, blockhash: string) {
    const tx = new Transaction({ feePayer: new PublicKey(from), recentBlockhash: blockhash }).add(
      SystemProgram.transfer({ fromPubkey: new PublicKey(from), toPubkey: new PublicKey(to), lamports: amount }),
    );
    const { signedTransaction } = await client.request('wallet.transaction.sign', {
      userId,
      walletId,
      transaction: tx.serialize({ requireAllSignatures: false, verifySignatures: false }).toString('base64'),
    });
    return Buffer.from(signedTransaction, 'base64');
  }

  it('should send the very bytes it signed before a crash while they can still land', async () => {
    const { userId, w, to } = await funded();
    const { blockhash } = await new Connection(solana.url, 'confirmed').getLatestBlockhash();
    const bytes = await signedNotSent(userId, w.walletId, w.address, to, 7_000_000, blockhash);
    await db.query(
      `INSERT INTO transfers (wallet_id, idempotency_key, recipient, amount, status, signed_tx, signature) VALUES ($1, 'crash-before-send', $2, 7000000, 'signed', $3, $4)`,
      [w.walletId, to, bytes, transactionSignature(bytes)],
    );
    const sent = await transfer(userId, w.walletId, to, '7000000', 'crash-before-send');
    assert.equal(sent.signature, transactionSignature(bytes), 'the stored transaction, not a new one');
    assert.equal(await lamports(to), 7_000_000n);
  });

  it('should sign a new transaction when the stored one can never land (blockhash expired, never seen)', async () => {
    const { userId, w, to } = await funded();
    // A blockhash the runtime never issued: as good as one that expired long ago.
    const bytes = await signedNotSent(userId, w.walletId, w.address, to, 9_000_000, '11111111111111111111111111111111');
    await db.query(
      `INSERT INTO transfers (wallet_id, idempotency_key, recipient, amount, status, signed_tx, signature) VALUES ($1, 'expired', $2, 9000000, 'signed', $3, $4)`,
      [w.walletId, to, bytes, transactionSignature(bytes)],
    );
    const sent = await transfer(userId, w.walletId, to, '9000000', 'expired');
    assert.notEqual(sent.signature, transactionSignature(bytes));
    assert.equal(await lamports(to), 9_000_000n, 'sent once');
    assert.equal((await db.query(`SELECT signature FROM transfers WHERE wallet_id = $1`, [w.walletId])).rows[0].signature, sent.signature);
  });
});

describe('transfer store locks: every wait bounded, one holder per name across processes', function () {
  this.timeout(30_000);
  let schema: TestSchema;
  const pools: pg.Pool[] = [];

  before(async () => {
    schema = await createSchemaName('wallet_locks');
  });
  after(async () => {
    await Promise.all(pools.map((p) => p.end()));
    await schema?.drop();
  });

  /** The locks of one process: its own main and lock pools. The lock methods never write the outbox. */
  const replica = (lockConnections: number) => {
    const open = (max: number) => {
      const p = new pg.Pool({ connectionString: schema.runtimeUrl, max });
      pools.push(p);
      return p;
    };
    const outbox = {
      enqueue: () => Promise.reject(new Error('not used by locks')),
    } as unknown as OutboxWriter;
    return createTransferStore(open(2), outbox, { pool: open(lockConnections), max: lockConnections });
  };
  /** A holder's body that runs until `release()`; `running` once it holds its lock. */
  const held = () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    return { gate, release, running: false };
  };
  const unavailable = (e: unknown) => isFleetError(e, ErrorCode.UNAVAILABLE);

  it('should make a second caller of one name wait, in-process and in another process, and answer UNAVAILABLE after waitMs', async () => {
    const a = replica(2);
    const b = replica(2);
    const h = held();
    const holding = a.withKeyLock('k', 1000, async () => {
      h.running = true;
      await h.gate;
      return 'first';
    });
    await waitFor(() => h.running);
    await assert.rejects(
      a.withKeyLock('k', 200, async () => 'same process'),
      unavailable,
    );
    await assert.rejects(
      b.withKeyLock('k', 200, async () => 'other process'),
      unavailable,
    );
    const waiting = b.withKeyLock('k', 5000, async () => 'after');
    h.release();
    assert.equal(await holding, 'first');
    assert.equal(await waiting, 'after');
  });

  it('should bound the wait for a lock connection, and take a nested lock on the outer one’s connection', async () => {
    const a = replica(1);
    const h = held();
    const holding = a.withKeyLock('outer', 1000, async () => {
      const inner = await a.withKeyLock('inner', 1000, async () => 'nested');
      h.running = true;
      await h.gate;
      return inner;
    });
    await waitFor(() => h.running);
    await assert.rejects(
      a.withKeyLock('other', 200, async () => 'no connection left'),
      unavailable,
    );
    h.release();
    assert.equal(await holding, 'nested');
    assert.equal(await a.withKeyLock('other', 1000, async () => 'free again'), 'free again');
  });
});
