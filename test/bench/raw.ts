// Raw infrastructure baselines, measured in the same run as the fleet's figures: what amqplib and
// pg do with no fleet code in between. Settings match the fleet's (noDelay, persistent messages,
// confirms, quorum queues, 16 PostgreSQL connections).
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import amqp from 'amqplib';
import pg from 'pg';
import { runConcurrent, type Measurement } from './stats.js';

const socketOptions = { noDelay: true };

/** Persistent messages with confirms (window 256) into a quorum queue, consumed and acked. */
export async function rawPublishConsume(url: string, total: number): Promise<Measurement> {
  const conn = await amqp.connect(url, socketOptions);
  try {
    const pub = await conn.createConfirmChannel();
    const sub = await conn.createChannel();
    const queue = `bench.raw.${randomUUID()}`;
    await sub.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await sub.prefetch(1000);
    const body = Buffer.from(JSON.stringify({ eventId: randomUUID(), action: 'bench', padding: 'x'.repeat(300) }));
    let consumed = 0;
    const done = new Promise<void>((resolve) => {
      void sub.consume(queue, (msg) => {
        if (!msg) return;
        sub.ack(msg);
        if (++consumed === total) resolve();
      });
    });
    const start = process.hrtime.bigint();
    let inFlight = 0;
    const waiters: Array<() => void> = [];
    for (let i = 0; i < total; i++) {
      while (inFlight >= 256) await new Promise<void>((r) => waiters.push(r));
      inFlight++;
      pub.publish('', queue, body, { persistent: true, contentType: 'application/json' }, () => {
        inFlight--;
        waiters.shift()?.();
      });
    }
    await pub.waitForConfirms();
    await done;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    await sub.deleteQueue(queue);
    return { name: 'raw amqplib publish+consume', ops: total, seconds, latencies: [] };
  } finally {
    await conn.close();
  }
}

/**
 * How a raw client sends a request: to the queue by the default exchange, or, `fleet`, as the fleet's
 * RPC client does at the AMQP level (no fleet code): through the `wallet.commands` topic exchange with
 * `routingKey`, mandatory, on a confirm channel, with the fleet's request properties and headers
 * (message id, user id, timestamp, correlation id, traceparent, deadline).
 */
type RequestShape = { kind: 'plain' } | { kind: 'fleet'; routingKey: string; userId: string };

/** `total` sequential calls over direct reply-to to whatever answers on `queue`. */
async function sequentialCalls(
  conn: amqp.ChannelModel,
  queue: string,
  total: number,
  name: string,
  shape: RequestShape = { kind: 'plain' },
): Promise<Measurement> {
  const client = shape.kind === 'fleet' ? await conn.createConfirmChannel() : await conn.createChannel();
  const pending = new Map<string, () => void>();
  await client.consume('amq.rabbitmq.reply-to', (msg) => msg && pending.get(msg.properties.correlationId)?.(), { noAck: true });
  const m = await runConcurrent(name, total, 1, () => {
    const id = randomUUID();
    return new Promise<void>((resolve) => {
      pending.set(id, () => {
        pending.delete(id);
        resolve();
      });
      if (shape.kind === 'plain') {
        client.publish('', queue, Buffer.from('{}'), { correlationId: id, replyTo: 'amq.rabbitmq.reply-to' });
        return;
      }
      const trace = randomUUID().replace(/-/g, '');
      client.publish(
        'wallet.commands',
        shape.routingKey,
        Buffer.from('{"userId":"nobody","limit":1}'),
        {
          mandatory: true,
          messageId: randomUUID(),
          correlationId: id,
          replyTo: 'amq.rabbitmq.reply-to',
          contentType: 'application/json',
          persistent: false,
          timestamp: Math.floor(Date.now() / 1000),
          userId: shape.userId,
          headers: { 'x-correlation-id': id, traceparent: `00-${trace}-${trace.slice(0, 16)}-01`, 'x-deadline': Date.now() + 10_000 },
        },
        () => undefined,
      );
    });
  });
  await client.deleteQueue(queue);
  return m;
}

/** Sequential request/response over direct reply-to against a raw amqplib responder in this process. */
export async function rawRpc(url: string, total: number): Promise<Measurement> {
  const conn = await amqp.connect(url, socketOptions);
  try {
    const server = await conn.createChannel();
    const queue = `bench.rpc.${randomUUID()}`;
    await server.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await server.prefetch(32);
    await server.consume(queue, (msg) => {
      if (!msg) return;
      server.sendToQueue(msg.properties.replyTo, Buffer.from('{"ok":true,"result":{}}'), { correlationId: msg.properties.correlationId });
      server.ack(msg);
    });
    return await sequentialCalls(conn, queue, total, 'raw amqplib RPC (direct reply-to)');
  } finally {
    await conn.close();
  }
}

/**
 * Sequential request/response over direct reply-to to a raw responder in its own process
 * (raw-responder.mjs), as the fleet's services run; with `database`, the responder runs the query of
 * `wallet.audit.query {limit:1}` before it replies; with `fleetShape`, client and responder use the
 * AMQP features the fleet's messaging uses (see raw-responder.mjs and `RequestShape`), so that what
 * is left between this and the fleet is the fleet's own code.
 */
export async function rawRpcToProcess(
  url: string,
  total: number,
  database?: { url: string; schema: string },
  fleetShape?: { userId: string },
): Promise<Measurement> {
  const queue = `bench.rpc.${randomUUID()}`;
  const routingKey = `bench.raw.${randomUUID()}`;
  const script = fileURLToPath(new URL('./raw-responder.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, url, queue, ...(database ? [database.url, database.schema] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...(fleetShape ? { RAW_RESPONDER_SHAPE: 'fleet', RAW_RESPONDER_ROUTING_KEY: routingKey } : {}) },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.once('exit', (code) => reject(new Error(`raw responder exited with ${code}`)));
    });
    const conn = await amqp.connect(url, socketOptions);
    const name = `raw RPC, responder process${database ? ' runs the same query' : ''}${fleetShape ? ', fleet AMQP shape' : ''}`;
    try {
      return await sequentialCalls(conn, queue, total, name, fleetShape ? { kind: 'fleet', routingKey, ...fleetShape } : { kind: 'plain' });
    } finally {
      await conn.close();
    }
  } finally {
    child.kill('SIGTERM');
  }
}

/** Single-row INSERTs with a unique constraint, 16 connections in flight. */
export async function rawInsert(databaseUrl: string, total: number): Promise<Measurement> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 16 });
  const table = `bench_raw_${randomUUID().replace(/-/g, '')}`;
  try {
    await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, event_id uuid UNIQUE NOT NULL, payload text NOT NULL)`);
    const payload = JSON.stringify({ action: 'bench', padding: 'x'.repeat(300) });
    return await runConcurrent('raw INSERT (16 in flight)', total, 16, () =>
      pool.query(`INSERT INTO ${table} (event_id, payload) VALUES ($1, $2)`, [randomUUID(), payload]),
    );
  } finally {
    await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await pool.end();
  }
}

/**
 * What a durable accept costs at the least: one INSERT (its own commit) and then one persistent
 * publish awaited for its broker confirm, `concurrency` of them at once (one confirm channel, one
 * pool), into a quorum queue nobody consumes.
 */
export async function rawInsertThenPublish(databaseUrl: string, amqpUrl: string, total: number, concurrency = 32): Promise<Measurement> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: Math.min(concurrency, 16) });
  const conn = await amqp.connect(amqpUrl, socketOptions);
  const table = `bench_raw_${randomUUID().replace(/-/g, '')}`;
  const queue = `bench.raw.${randomUUID()}`;
  try {
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    await pool.query(`CREATE TABLE ${table} (id bigserial PRIMARY KEY, event_id uuid UNIQUE NOT NULL, payload text NOT NULL)`);
    const payload = JSON.stringify({ action: 'bench', padding: 'x'.repeat(300) });
    const body = Buffer.from(payload);
    return await runConcurrent(`raw INSERT then confirmed publish (${concurrency} in flight)`, total, concurrency, async () => {
      await pool.query(`INSERT INTO ${table} (event_id, payload) VALUES ($1, $2)`, [randomUUID(), payload]);
      await new Promise<void>((resolve, reject) =>
        ch.publish('', queue, body, { persistent: true, contentType: 'application/json' }, (err) => (err ? reject(err) : resolve())),
      );
    });
  } finally {
    await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
    await pool.end();
    const c = await conn.createChannel().catch(() => undefined);
    await c?.deleteQueue(queue).catch(() => undefined);
    await conn.close().catch(() => undefined);
  }
}

type BareKms = InstanceType<typeof KeyManagementServiceClient>;

/**
 * The bare `@google-cloud/kms` client against `endpoint` (the emulator: plaintext, no Google auth),
 * with nothing of ours around it: no breaker, no retries of our own, no checksums, no verification.
 */
export function bareKmsClient(endpoint: string): BareKms {
  const [host, port] = endpoint.split(':');
  // The client's own copy of grpc-js (google-gax's) must make the insecure credentials.
  const gax = createRequire(createRequire(import.meta.url).resolve('@google-cloud/kms'))('google-gax') as {
    grpc: { credentials: { createInsecure(): unknown } };
  };
  return new KeyManagementServiceClient({
    apiEndpoint: host!,
    port: Number(port),
    sslCreds: gax.grpc.credentials.createInsecure() as never,
    universeDomain: 'googleapis.com',
  });
}

/** Bare CreateCryptoKey (Ed25519) and GetCryptoKeyVersion polled every 10 ms until ENABLED, `concurrency` at once. */
export async function rawKmsCreate(kms: BareKms, keyRing: string, total: number, concurrency: number): Promise<Measurement> {
  return runConcurrent(`bare client CreateCryptoKey + wait ENABLED (${concurrency} in flight)`, total, concurrency, async () => {
    const [key] = await kms.createCryptoKey({
      parent: keyRing,
      cryptoKeyId: `raw-${randomUUID()}`,
      cryptoKey: { purpose: 'ASYMMETRIC_SIGN', versionTemplate: { algorithm: 'EC_SIGN_ED25519', protectionLevel: 'SOFTWARE' } },
    });
    for (;;) {
      const [v] = await kms.getCryptoKeyVersion({ name: `${key.name}/cryptoKeyVersions/1` });
      if (v.state === 'ENABLED') return;
      await new Promise((r) => setTimeout(r, 10));
    }
  });
}

/** Bare AsymmetricSign of `message` with `keyVersion`, `concurrency` at once. */
export async function rawKmsSign(kms: BareKms, keyVersion: string, message: Uint8Array, total: number, concurrency: number): Promise<Measurement> {
  return runConcurrent(`bare client AsymmetricSign, same key (${concurrency} in flight)`, total, concurrency, () =>
    kms.asymmetricSign({ name: keyVersion, data: message }),
  );
}
