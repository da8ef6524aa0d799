import { randomBytes } from 'node:crypto';
import { backingServices } from './backing.js';

async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  const { managementUrl } = await backingServices();
  const u = new URL(managementUrl);
  const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  const res = await fetch(`${u.protocol}//${u.host}/api${path}`, {
    method,
    headers: { authorization: `Basic ${auth}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok && !(method === 'DELETE' && res.status === 404)) {
    throw new Error(`RabbitMQ management ${method} ${path}: ${res.status} ${await res.text()}`);
  }
  const text = await res.text();
  return text ? JSON.parse(text) : undefined;
}

export interface TestVhost {
  vhost: string;
  /** AMQP URL into this vhost. */
  url: string;
  drop(): Promise<void>;
}

/** A fresh RabbitMQ vhost for one test or suite, so that topologies never collide. */
export async function createVhost(prefix = 'test'): Promise<TestVhost> {
  const { amqpUrl } = await backingServices();
  const vhost = `${prefix}-${randomBytes(5).toString('hex')}`;
  const enc = encodeURIComponent(vhost);
  await api('PUT', `/vhosts/${enc}`, {});
  const user = decodeURIComponent(new URL(amqpUrl).username || 'guest');
  await api('PUT', `/permissions/${enc}/${encodeURIComponent(user)}`, { configure: '.*', write: '.*', read: '.*' });
  const u = new URL(amqpUrl);
  u.pathname = `/${enc}`;
  return { vhost, url: u.toString(), drop: async () => void (await api('DELETE', `/vhosts/${enc}`)) };
}

export interface QueueInfo {
  name: string;
  messages: number;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
  arguments: Record<string, unknown>;
  type?: string;
}

/** The broker's view, through the management API. */
export const rabbitAdmin = {
  async queues(vhost: string): Promise<QueueInfo[]> {
    return (await api('GET', `/queues/${encodeURIComponent(vhost)}`)) as QueueInfo[];
  },
  async queue(vhost: string, name: string): Promise<QueueInfo> {
    return (await api('GET', `/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(name)}`)) as QueueInfo;
  },
  /** Closes every client connection into the vhost from the broker side; returns how many. */
  async closeConnections(vhost: string, reason = 'closed by test'): Promise<number> {
    const all = (await api('GET', '/connections')) as Array<{ name: string; vhost: string }>;
    const mine = all.filter((c) => c.vhost === vhost);
    await Promise.all(
      mine.map((c) =>
        api('DELETE', `/connections/${encodeURIComponent(c.name)}`).catch(() => undefined).then(() => reason),
      ),
    );
    return mine.length;
  },
  /** Takes up to `count` messages off a queue (acked: they are removed). */
  async drain(vhost: string, queue: string, count = 100): Promise<Array<{ payload: string; properties: { headers?: Record<string, unknown> } & Record<string, unknown>; routing_key: string }>> {
    return (await api('POST', `/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(queue)}/get`, {
      count,
      ackmode: 'ack_requeue_false',
      encoding: 'auto',
    })) as never;
  },
};
