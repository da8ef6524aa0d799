// A raw RPC responder in its own process (plain amqplib and pg, no fleet code), as the fleet's
// services are: consumes `queue`, optionally runs one query, replies over direct reply-to.
// Usage: node raw-responder.mjs <amqp url> <queue> [<database url> <schema>]; prints "ready".
import amqp from 'amqplib';
import pg from 'pg';

const [url, queue, databaseUrl, schema] = process.argv.slice(2);
const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema}`, max: 1 }) : undefined;
const conn = await amqp.connect(url, { noDelay: true });
const ch = await conn.createChannel();
await ch.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
await ch.prefetch(32);
const sql = { name: 'raw-audit-query', text: 'SELECT * FROM audit_events WHERE user_id = $1 ORDER BY sequence DESC LIMIT $2', values: ['nobody', 2] };
await ch.consume(queue, async (msg) => {
  if (!msg) return;
  if (pool) await pool.query(sql);
  ch.sendToQueue(msg.properties.replyTo, Buffer.from('{"ok":true,"result":{}}'), { correlationId: msg.properties.correlationId });
  ch.ack(msg);
});
process.on('SIGTERM', async () => {
  await conn.close().catch(() => {});
  await pool?.end();
  process.exit(0);
});
console.log('ready');
