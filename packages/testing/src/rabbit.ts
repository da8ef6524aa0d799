import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
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
  /**
   * AMQP URL into this vhost as the administrative user of the backing services (guest locally). It
   * holds no role: services refuse its messages. For looking at queues and for suites whose
   * topologies are their own; talk to the fleet with `as(role)`.
   */
  url: string;
  /** The broker user of `url`: what a raw publish sets as `user_id` (RabbitMQ refuses any other). */
  user: string;
  /**
   * AMQP URL into this vhost as the broker user of `role` (user named like the role, local
   * development password, see `rolePassword`). The user holds permissions here only after
   * `applyBrokerDefinitions` (`createFleetVhost` applies the fleet's).
   */
  as(role: string): string;
  drop(): Promise<void>;
}

/**
 * The local development password of a role's broker user: `BROKER_PASSWORD_<ROLE>` when set, else
 * the role's name (as guest/guest; `scripts/setup.sh` creates the users with the same rule).
 */
function rolePassword(role: string, env: NodeJS.ProcessEnv = process.env): string {
  return env[`BROKER_PASSWORD_${role.toUpperCase()}`] ?? role;
}

/** What `applyBrokerDefinitions` reads of a definitions file (packages/messaging `brokerDefinitions`). */
export interface DefinitionsToApply {
  users: Array<{ name: string }>;
  permissions: Array<{ user: string; configure: string; write: string; read: string }>;
  topic_permissions: Array<{ user: string; exchange: string; write: string; read: string }>;
  exchanges: Array<{ name: string; type: string; durable: boolean; auto_delete: boolean; internal: boolean; arguments: Record<string, unknown> }>;
  /** Declared ahead, so that what is published before a consumer first runs waits in its queue. */
  queues: Array<{ name: string; durable: boolean; auto_delete: boolean; arguments: Record<string, unknown> }>;
  bindings: Array<{ source: string; destination: string; destination_type: string; routing_key: string; arguments: Record<string, unknown> }>;
  /** Limits and the dead-letter strategy (packages/messaging `topologyPolicies`), the alternate exchange. */
  policies: Array<{ name: string; pattern: string; 'apply-to': string; priority: number; definition: Record<string, unknown> }>;
}

/**
 * Imports generated broker definitions into one vhost, as `rabbitmqctl import_definitions` would
 * (exchanges, queues, bindings, policies, vhost permissions, topic permissions), through the
 * management API. Users are global
 * in RabbitMQ and shared by every test: they are created (or their password re-set) with
 * `rolePassword`, never imported from the file, whose users carry no password.
 */
export async function applyBrokerDefinitions(vhost: string, defs: DefinitionsToApply, opts: { users?: Record<string, readonly string[]> } = {}): Promise<void> {
  defs = withNamedUsers(defs, opts.users ?? {});
  for (const u of defs.users) {
    await api('PUT', `/users/${encodeURIComponent(u.name)}`, { password: rolePassword(u.name), tags: '' });
  }
  await api('POST', `/definitions/${encodeURIComponent(vhost)}`, {
    exchanges: defs.exchanges.map((e) => ({ ...e, vhost })),
    queues: defs.queues.map((q) => ({ ...q, vhost })),
    bindings: defs.bindings.map((b) => ({ ...b, vhost })),
    policies: defs.policies.map((p) => ({ ...p, vhost })),
  });
  // The vhost-scoped import takes neither kind of permission: they are set one by one.
  const enc = encodeURIComponent(vhost);
  for (const p of defs.permissions) {
    await api('PUT', `/permissions/${enc}/${encodeURIComponent(p.user)}`, { configure: p.configure, write: p.write, read: p.read });
  }
  for (const t of defs.topic_permissions) {
    await api('PUT', `/topic-permissions/${enc}/${encodeURIComponent(t.user)}`, { exchange: t.exchange, write: t.write, read: t.read });
  }
}

/**
 * The definitions plus users named otherwise than their roles (`{'approver-1': ['approver']}`), each
 * with the permissions of its roles together, as a deployment names one user per human or approving
 * service (the services learn their roles from BROKER_USER_ROLES).
 */
function withNamedUsers(defs: DefinitionsToApply, users: Record<string, readonly string[]>): DefinitionsToApply {
  const named = Object.entries(users);
  const either = (patterns: string[]) => (patterns.length === 1 ? patterns[0]! : patterns.map((p) => `(?:${p})`).join('|'));
  const permissions = named.map(([user, roles]) => {
    const of = defs.permissions.filter((p) => roles.includes(p.user));
    return { user, configure: either(of.map((p) => p.configure)), write: either(of.map((p) => p.write)), read: either(of.map((p) => p.read)) };
  });
  const topic = named.flatMap(([user, roles]) =>
    [...new Set(defs.topic_permissions.map((t) => t.exchange))].map((exchange) => {
      const of = defs.topic_permissions.filter((t) => t.exchange === exchange && roles.includes(t.user));
      return { user, exchange, write: either(of.map((t) => t.write)), read: either(of.map((t) => t.read)) };
    }),
  );
  return {
    ...defs,
    users: [...defs.users, ...named.map(([name]) => ({ name }))],
    permissions: [...defs.permissions, ...permissions],
    topic_permissions: [...defs.topic_permissions, ...topic],
  };
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
  const as = (role: string) => {
    const r = new URL(u.toString());
    r.username = encodeURIComponent(role);
    r.password = encodeURIComponent(rolePassword(role));
    return r.toString();
  };
  return { vhost, url: u.toString(), user, as, drop: async () => void (await api('DELETE', `/vhosts/${enc}`)) };
}

export interface QueueInfo {
  name: string;
  messages: number;
  messages_ready: number;
  messages_unacknowledged: number;
  consumers: number;
  arguments: Record<string, unknown>;
  type?: string;
  /** The policy in force on the queue (absent while none applies). */
  effective_policy_definition?: Record<string, unknown>;
}

/** The generated production definitions (`pnpm broker-definitions`; a test fails when they are stale). */
const FLEET_DEFINITIONS = new URL('../../../infra/rabbitmq/definitions.json', import.meta.url);

/**
 * A fresh vhost holding the fleet's production broker definitions (infra/rabbitmq/definitions.json:
 * one user per role, vhost and topic permissions), so that services started with
 * `AMQP_URL: vhost.as('<service>')` and clients as `vhost.as('backend' | 'ops')` meet the checks
 * they meet in production. `url` (the administrative user, no role) is for looking, not for talking
 * to the fleet: the services refuse its messages. `users` adds users named otherwise than their role
 * (`{'approver-1': ['approver']}`: reach them with `as('approver-1')`); the services under test need
 * BROKER_USER_ROLES to know them.
 */
export async function createFleetVhost(prefix = 'fleet', opts: { users?: Record<string, readonly string[]> } = {}): Promise<TestVhost> {
  const vhost = await createVhost(prefix);
  await applyBrokerDefinitions(vhost.vhost, JSON.parse(await readFile(FLEET_DEFINITIONS, 'utf8')) as DefinitionsToApply, opts);
  return vhost;
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
        api('DELETE', `/connections/${encodeURIComponent(c.name)}`)
          .catch(() => undefined)
          .then(() => reason),
      ),
    );
    return mine.length;
  },
  /** Takes up to `count` messages off a queue (acked: they are removed). */
  async drain(
    vhost: string,
    queue: string,
    count = 100,
  ): Promise<Array<{ payload: string; properties: { headers?: Record<string, unknown> } & Record<string, unknown>; routing_key: string }>> {
    return (await api('POST', `/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(queue)}/get`, {
      count,
      ackmode: 'ack_requeue_false',
      encoding: 'auto',
    })) as never;
  },
};
