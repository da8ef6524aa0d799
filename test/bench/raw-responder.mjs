// A raw RPC responder in its own process (plain amqplib and pg, no fleet code), as the fleet's
// services are: consumes `queue`, optionally runs one query, replies over direct reply-to.
// Usage: node raw-responder.mjs <amqp url> <queue> [<database url> <schema>]; prints "ready".
// RAW_RESPONDER_SHAPE=fleet: the AMQP features the fleet's messaging uses, still without any fleet
// code: the queue bound to the `wallet.commands` topic exchange (`RAW_RESPONDER_ROUTING_KEY`), the
// reply on a confirm channel of a second connection (publishing apart from consuming), with the
// fleet's reply properties, the request acked once the reply is confirmed.
import amqp from 'amqplib';
import pg from 'pg';

const [url, queue, databaseUrl, schema] = process.argv.slice(2);
const fleetShape = process.env.RAW_RESPONDER_SHAPE === 'fleet';
const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema}`, max: 1 }) : undefined;
const conn = await amqp.connect(url, { noDelay: true });
const ch = await conn.createChannel();
const pubConn = fleetShape ? await amqp.connect(url, { noDelay: true }) : undefined;
const pub = pubConn ? await pubConn.createConfirmChannel() : undefined;
await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
if (fleetShape) await ch.bindQueue(queue, 'wallet.commands', process.env.RAW_RESPONDER_ROUTING_KEY);
await ch.prefetch(32);
const sql = { name: 'raw-audit-query', text: 'SELECT * FROM audit_events WHERE user_id = $1 ORDER BY sequence DESC LIMIT $2', values: ['nobody', 2] };
const body = Buffer.from('{"ok":true,"result":{}}');
await ch.consume(queue, async (msg) => {
  if (!msg) return;
  if (pool) await pool.query(sql);
  const { correlationId, replyTo, headers } = msg.properties;
  if (!pub) {
    ch.sendToQueue(replyTo, body, { correlationId });
    ch.ack(msg);
    return;
  }
  const props = {
    correlationId,
    contentType: 'application/json',
    persistent: false,
    appId: 'raw',
    headers: { 'x-correlation-id': headers?.['x-correlation-id'] },
  };
  pub.publish('', replyTo, body, props, () => ch.ack(msg));
});
process.on('SIGTERM', async () => {
  await conn.close().catch(() => {});
  await pubConn?.close().catch(() => {});
  await pool?.end();
  process.exit(0);
});
console.log('ready');
