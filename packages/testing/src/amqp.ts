import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { TestVhost } from './rabbit.js';

export interface RawAmqp {
  /** A channel (in confirm mode) on a connection of its own; its errors are the test's to observe, not to crash on. */
  channel(vhost: TestVhost): Promise<ConfirmChannel>;
  /** Ready messages of a queue, straight from the broker (the management API lags by seconds). */
  depth(vhost: TestVhost, queue: string): Promise<number>;
  /** Closes every connection opened so far. */
  close(): Promise<void>;
}

/**
 * Plain amqplib connections into test vhosts, for what our own library would refuse to do
 * (malformed messages, a DLQ without its work queue, reading a queue behind a consumer's back).
 */
export function rawAmqp(): RawAmqp {
  const opened: ChannelModel[] = [];
  async function channel(vhost: TestVhost): Promise<ConfirmChannel> {
    const conn = await amqp.connect(vhost.url, { noDelay: true });
    conn.on('error', () => undefined);
    opened.push(conn);
    const ch = await conn.createConfirmChannel();
    ch.on('error', () => undefined);
    return ch;
  }
  return {
    channel,
    async depth(vhost, queue) {
      const ch = await channel(vhost);
      try {
        return (await ch.checkQueue(queue)).messageCount;
      } finally {
        await ch.close().catch(() => undefined);
      }
    },
    async close() {
      await Promise.all(opened.splice(0).map((c) => c.close().catch(() => undefined)));
    },
  };
}
