import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditEvent, auditCheckpointMessage } from '@wallet-fleet/contracts';
import { createKmsCustody, verifyEd25519 } from '@wallet-fleet/kms';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import { type Broker, createBroker, defineTopology } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import pg from 'pg';
import { createAuditService } from '../src/app.js';
import { canonicalPayload, GENESIS_HASH, rowHash } from '../src/chain.js';
import { loadAuditConfig } from '../src/config.js';

const silent = createLogger({ service: 'test', level: 'silent' });

function event(i: number): AuditEvent {
  return {
    eventId: randomUUID(),
    occurredAt: new Date(Date.UTC(2026, 10, 23, 10, 0, i)).toISOString(),
    actor: { type: 'service', id: 'wallet' },
    action: 'wallet.create',
    resource: { type: 'wallet', id: `w-${i}` },
    userId: 'alice',
    status: 'success',
  };
}

describe('audit checkpoints (real PostgreSQL, RabbitMQ, KMS emulator)', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let kmsDir: string;
  let service: ReturnType<typeof createAuditService>;
  let client: Broker;
  let walletPublisher: Broker;
  let admin: pg.Pool;
  let events: amqp.ChannelModel;
  const published: any[] = [];

  beforeEach(async () => {
    vhost = await createFleetVhost('audit-cp');
    schema = await createSchemaName('audit_cp');
    kmsDir = mkdtempSync(join(tmpdir(), 'kms-'));
    kms = await startKmsEmulator({ port: 0, dataDir: kmsDir });
    const { redisUrl } = await backingServices();
    service = createAuditService(
      loadAuditConfig({
        FLEET_DEV_MODE: 'true',
        ...schema.env,
        AMQP_URL: vhost.as('audit'),
        REDIS_URL: redisUrl,
        HTTP_PORT: '0',
        KMS_ENDPOINT: kms.endpoint,
        KMS_CALL_TIMEOUT_MS: '2000',
        AUDIT_BATCH_WAIT_MS: '0',
        LOG_LEVEL: 'silent',
      }),
      silent,
    );
    await service.start();
    events = await amqp.connect(vhost.url);
    const ch = await events.createChannel();
    const q = await ch.assertQueue('', { exclusive: true });
    await ch.bindQueue(q.queue, 'wallet.events', 'audit.checkpoint');
    published.length = 0;
    await ch.consume(q.queue, (m: amqp.ConsumeMessage | null) => m && published.push(JSON.parse(m.content.toString())), { noAck: true });
    // The wallet service's audit events come from the wallet user; checkpoints and verify are ops calls.
    walletPublisher = createBroker({ url: vhost.as('wallet'), service: 'test-wallet', logger: silent, topology: defineTopology({ queues: [] }) });
    await walletPublisher.start();
    client = createBroker({ url: vhost.as('ops'), service: 'test-ops', logger: silent, topology: defineTopology({ queues: [] }) });
    await client.start();
    admin = new pg.Pool({ connectionString: schema.databaseUrl, options: `-c search_path=${schema.schema}`, max: 2 });
  });

  afterEach(async () => {
    await client?.stop();
    await walletPublisher?.stop();
    await events?.close();
    await service?.stop();
    await admin?.end();
    await kms?.stop();
    rmSync(kmsDir, { recursive: true, force: true });
    await vhost?.drop();
    await schema?.drop();
  });

  async function store(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await walletPublisher.publishEvent('audit.wallet.create', event(i));
    await waitFor(async () => (await client.request('wallet.audit.query', { limit: 500 })).items.length === n, { what: `${n} stored events` });
  }

  it('should sign the chain head, keep it, publish it, and verify against it', async () => {
    await store(5);
    const cp = await client.request('wallet.audit.checkpoint', {});
    assert.equal(cp.sequence, 5);
    const head = (await admin.query<{ hash: Buffer }>('SELECT hash FROM audit_chain_head')).rows[0]!.hash.toString('hex');
    assert.equal(cp.hash, head);
    await waitFor(() => published.find((p) => p.checkpointId === cp.checkpointId), { what: 'the audit.checkpoint event' });
    // Anyone with the public key checks the published checkpoint without us.
    const custody = createKmsCustody({
      projectId: 'wallet-fleet-local',
      locationId: 'global',
      keyRingId: 'wallets',
      apiEndpoint: kms.endpoint,
      logger: silent,
    });
    try {
      const publicKey = await custody.getPublicKey(cp.keyVersion, 'ed25519');
      assert.ok(verifyEd25519(Buffer.from(cp.signature, 'hex'), auditCheckpointMessage(cp), publicKey));
    } finally {
      await custody.close();
    }
    assert.deepEqual(await client.request('wallet.audit.verify', {}), { valid: true, checked: 5, checkpoint: { sequence: 5, signedAt: cp.signedAt } });
  });

  it('should detect a superuser rewrite with recomputed hashes and head through the signed checkpoint', async () => {
    await store(4);
    await client.request('wallet.audit.checkpoint', {});
    // A superuser rewrites row 2 (another user), and recomputes every later hash and the head: the
    // chain is consistent in itself, so only the checkpoint can tell.
    const c = await admin.connect();
    try {
      await c.query('BEGIN');
      await c.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      const { rows } = await c.query<{ sequence: string; recorded_at: Date; payload: string }>(
        'SELECT sequence, recorded_at, payload FROM audit_events ORDER BY sequence',
      );
      let prev: Buffer = GENESIS_HASH;
      for (const r of rows) {
        const seq = Number(r.sequence);
        let payload = r.payload;
        if (seq === 2) {
          const e = JSON.parse(payload) as AuditEvent;
          payload = canonicalPayload({ ...e, userId: 'mallory' });
        }
        const hash = rowHash(prev, seq, r.recorded_at.toISOString(), payload);
        await c.query('UPDATE audit_events SET payload = $2, user_id = $3, prev_hash = $4, hash = $5 WHERE sequence = $1', [
          seq,
          payload,
          (JSON.parse(payload) as AuditEvent).userId,
          prev,
          hash,
        ]);
        prev = hash;
      }
      await c.query('UPDATE audit_chain_head SET hash = $1', [prev]);
      await c.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only');
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const result = await client.request('wallet.audit.verify', {});
    assert.equal(result.valid, false);
    assert.equal(result.brokenAt, 4);
    assert.match(result.reason ?? '', /signed checkpoint/);
    const metrics = await (await fetch(`http://127.0.0.1:${service.port()}/metrics`)).text();
    assert.match(metrics, /audit_verify_total\{result="invalid"[^}]*\} 1/);
  });

  it('should refuse a checkpoint whose signature was forged in the table', async () => {
    await store(2);
    await client.request('wallet.audit.checkpoint', {});
    await admin.query(`UPDATE audit_checkpoints SET signature = decode(repeat('ab', 64), 'hex')`);
    const result = await client.request('wallet.audit.verify', {});
    assert.equal(result.valid, false);
    assert.match(result.reason ?? '', /signature/);
  });

  it('should take a checkpoint on its own every interval once the chain grew', async () => {
    await service.stop();
    const { redisUrl } = await backingServices();
    service = createAuditService(
      loadAuditConfig({
        FLEET_DEV_MODE: 'true',
        ...schema.env,
        AMQP_URL: vhost.as('audit'),
        REDIS_URL: redisUrl,
        HTTP_PORT: '0',
        KMS_ENDPOINT: kms.endpoint,
        AUDIT_BATCH_WAIT_MS: '0',
        AUDIT_CHECKPOINT_INTERVAL_MS: '1000',
        LOG_LEVEL: 'silent',
      }),
      silent,
    );
    await service.start();
    await store(3);
    await waitFor(async () => (await admin.query('SELECT 1 FROM audit_checkpoints WHERE sequence = 3')).rowCount === 1, {
      what: 'a scheduled checkpoint at sequence 3',
      timeoutMs: 10_000,
    });
    // Scheduled, not asked for: verify then checks the chain against it.
    assert.deepEqual((await client.request('wallet.audit.verify', {})).checkpoint?.sequence, 3);
    await waitFor(() => published.find((p) => p.sequence === 3), { what: 'its audit.checkpoint event' });
  });
});
