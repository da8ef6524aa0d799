import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { TestVhost } from '@wallet-fleet/testing';
import { openConnection } from '../src/connection.js';
import { eachTestInFreshVhost, rawChannel, takeAll } from './support.js';

/** amqplib's socket under a connection (its internal `stream`, as write-batching.ts reaches it). */
const socketOf = (connection: unknown) => (connection as { stream: Socket }).stream;

/**
 * Counts what the socket hands to the kernel: each `_write` or `_writev` of a net.Socket is one
 * write request to libuv (one syscall when the kernel takes it at once, as on loopback).
 */
function countSocketWrites(socket: Socket): { count: number } {
  const counter = { count: 0 };
  const s = socket as Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
  const write = s._write;
  const writev = s._writev;
  s._write = (...a) => {
    counter.count++;
    write.apply(s, a);
  };
  s._writev = (...a) => {
    counter.count++;
    writev.apply(s, a);
  };
  return counter;
}

/** Publishes `n` numbered messages in one synchronous loop and waits for every confirm. */
async function burst(ch: ConfirmChannel, queue: string, n: number): Promise<void> {
  await ch.assertQueue(queue, { durable: true });
  for (let i = 0; i < n; i++) ch.sendToQueue(queue, Buffer.from(String(i)), { persistent: true });
  await ch.waitForConfirms();
}

describe('messaging: write batching', () => {
  let vhost: TestVhost;
  let conn: ChannelModel | undefined;
  eachTestInFreshVhost((v) => (vhost = v));
  afterEach(async () => {
    await conn?.close().catch(() => undefined);
    conn = undefined;
  });

  it('should send a burst of confirmed publishes in a fraction of the socket writes, in order', async () => {
    const n = 500;
    // The same burst over a plain amqplib connection: one socket write per publish.
    const plain = await rawChannel(vhost);
    const plainWrites = countSocketWrites(socketOf(plain.connection));
    await burst(plain, 'plain', n);

    conn = await openConnection(vhost.url, 'test', 5000);
    const ch = await conn.createConfirmChannel();
    const writes = countSocketWrites(socketOf(conn.connection));
    await burst(ch, 'batched', n);

    assert.ok(plainWrites.count >= n / 2, `the counter sees a plain connection's writes (${plainWrites.count} for ${n} publishes)`);
    assert.ok(writes.count <= n / 10, `${writes.count} socket writes for ${n} publishes (plain amqplib: ${plainWrites.count})`);
    const got = (await takeAll(vhost, 'batched')).map((m) => m.content.toString());
    assert.deepEqual(
      got,
      Array.from({ length: n }, (_, i) => String(i)),
      'every message arrived, in the order published',
    );
  });

  it('should hand a lone frame to the kernel before the next turn of the event loop', async () => {
    conn = await openConnection(vhost.url, 'test', 5000);
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue('lone', { durable: true });
    const socket = socketOf(conn.connection);
    const writes = countSocketWrites(socket);
    // Watch every frame written from here: by the next macrotask (setImmediate, after the nextTick
    // queue) it must have left the socket, not sat corked waiting for company.
    const checks: Array<{ left: boolean; corked: number }> = [];
    const batchedWrite = socket.write;
    socket.write = ((...args: Parameters<Socket['write']>) => {
      const before = writes.count;
      const result = batchedWrite.apply(socket, args);
      setImmediate(() => checks.push({ left: writes.count > before, corked: socket.writableCorked }));
      return result;
    }) as Socket['write'];
    // Sequential, like an RPC caller waiting for each answer: every publish is alone in its turn.
    for (let i = 0; i < 20; i++) {
      ch.sendToQueue('lone', Buffer.from(String(i)));
      await ch.waitForConfirms();
    }
    await new Promise((r) => setImmediate(r));
    assert.equal(checks.length, 20, 'one socket write per publish');
    assert.deepEqual(
      checks.filter((c) => !c.left || c.corked !== 0),
      [],
      'every frame left within its own turn',
    );
  });
});
