import { Exchanges, SERVICE_IN_KEY, events, fleetServices, operations, roles, type FleetService, type Role } from '@wallet-fleet/contracts';
import {
  DELAYED_EXCHANGE,
  RETRY_EXCHANGE,
  UNROUTABLE,
  declarations,
  delayQueues,
  dlqName,
  topologyPolicies,
  type Policy,
  type ResolvedQueueSpec,
  type Topology,
} from './topology.js';

/** RabbitMQ's definitions format (the parts we generate), as `rabbitmqctl import_definitions` reads it. */
export interface BrokerDefinitions {
  rabbit_version?: string;
  users: Array<{ name: string; password_hash: string; hashing_algorithm: string; tags: string[]; limits: Record<string, never> }>;
  vhosts: Array<{ name: string }>;
  permissions: Array<{ user: string; vhost: string; configure: string; write: string; read: string }>;
  topic_permissions: Array<{ user: string; vhost: string; exchange: string; write: string; read: string }>;
  exchanges: Array<{ name: string; vhost: string; type: string; durable: true; auto_delete: false; internal: false; arguments: Record<string, never> }>;
  queues: Array<{ name: string; vhost: string; durable: true; auto_delete: false; arguments: Record<string, unknown> }>;
  bindings: Array<{ source: string; vhost: string; destination: string; destination_type: 'queue'; routing_key: string; arguments: Record<string, never> }>;
  parameters: never[];
  policies: Array<Policy & { vhost: string }>;
  global_parameters: never[];
}

/**
 * The exchanges, queues, bindings and policies of the given topologies (and the parking place of
 * unroutable events), for one vhost: importing them declares every event queue (and its DLQ and
 * delay tiers) before its consumer first runs, so an event published before then waits in it; the
 * policies cover request queues too. Declaring the same again (the services do
 * at start) changes nothing; importing over queues that exist leaves them as they are.
 */
export function topologyDefinitions(topologies: Topology[], vhost = '/'): Pick<BrokerDefinitions, 'exchanges' | 'queues' | 'bindings' | 'policies'> {
  const exchanges = new Map<string, string>([[UNROUTABLE, 'fanout']]);
  const queues = new Map<string, Record<string, unknown>>([[UNROUTABLE, { 'x-queue-type': 'quorum' }]]);
  const bindings = new Map<string, BrokerDefinitions['bindings'][number]>();
  const bind = (source: string, destination: string, routing_key: string) =>
    bindings.set(JSON.stringify([source, destination, routing_key]), { source, vhost, destination, destination_type: 'queue', routing_key, arguments: {} });
  bind(UNROUTABLE, UNROUTABLE, '');
  const policies: BrokerDefinitions['policies'] = [
    // Events only: requests are mandatory (UNROUTABLE at once), retry and DLQ copies too (the
    // original stays where it is).
    {
      name: 'wallet-fleet unroutable',
      pattern: `^${Exchanges.events.replace(/\./g, '\\.')}$`,
      'apply-to': 'exchanges',
      priority: 10,
      definition: { 'alternate-exchange': UNROUTABLE },
      vhost,
    },
    // The parking queue itself may dead-letter nothing, but what it holds must survive like the rest.
    {
      name: 'wallet-fleet unroutable-queue',
      pattern: `^${UNROUTABLE.replace(/\./g, '\\.')}$`,
      'apply-to': 'queues',
      priority: 10,
      definition: { overflow: 'reject-publish' },
      vhost,
    },
  ];
  for (const t of topologies) {
    const d = declarations(t);
    // Request queues are left to their service: until it first ran, a request is UNROUTABLE at once
    // (mandatory) instead of waiting in a queue nobody consumes until its caller gives up.
    const rpc = new Set(t.queues.filter((q) => q.kind === 'rpc').flatMap((q) => [q.name, dlqName(q.name)]));
    for (const e of d.exchanges) exchanges.set(e.name, e.type);
    for (const q of d.queues) if (!rpc.has(q.name)) queues.set(q.name, q.arguments);
    for (const b of d.bindings) if (!rpc.has(b.queue)) bind(b.exchange, b.queue, b.pattern);
    for (const p of topologyPolicies(t)) if (!policies.some((x) => x.name === p.name)) policies.push({ ...p, vhost });
  }
  return {
    exchanges: [...exchanges].map(([name, type]) => ({ name, vhost, type, durable: true, auto_delete: false, internal: false, arguments: {} })),
    queues: [...queues].map(([name, args]) => ({ name, vhost, durable: true, auto_delete: false, arguments: args })),
    bindings: [...bindings.values()],
    policies,
  };
}

/** A regex that matches no name and no routing key the fleet uses (RabbitMQ reads `""` as "nothing" only for vhost permissions). */
const NOTHING = '^$';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const anyOf = (alternatives: string[]) => (alternatives.length === 0 ? NOTHING : `^(${[...new Set(alternatives)].sort().join('|')})$`);

/** A queue of the topology with its DLQ, as one regex alternative. */
function queueFamily(q: ResolvedQueueSpec): string {
  return `${escapeRegExp(q.name)}(\\.dlq)?`;
}

/** A topic binding pattern as the literal the broker compares the read pattern with. */
const literal = (pattern: string) => escapeRegExp(pattern);

function publishableEvents(role: Role): string[] {
  const keys: string[] = [];
  for (const [name, ev] of Object.entries(events)) {
    for (const p of ev.producers as readonly string[]) {
      if (p === role) keys.push(escapeRegExp(name));
      // `audit.#` stands for `audit.<service>.<action>`: the role may publish its own segment only.
      if (p === SERVICE_IN_KEY) keys.push(`${escapeRegExp(name.replace(/\.#$/, ''))}\\.${escapeRegExp(role)}\\..+`);
    }
  }
  return keys;
}

function callableOperations(role: Role): string[] {
  return Object.entries(operations)
    .filter(([, op]) => (op.callers as readonly string[]).includes(role))
    .map(([name]) => escapeRegExp(name));
}

/**
 * RabbitMQ definitions for one vhost: one user per role (fleet services and external roles, no
 * password: passwords come from the environment or the deployment's secrets), vhost permissions
 * and topic permissions on `wallet.commands`, `wallet.events` and the retry exchange, computed
 * from the catalogue (who may call and publish what) and from each service's topology (what it
 * declares, binds and consumes). What the definitions allow:
 *
 * - publish: a role writes only the operations it may call and the events it may produce (topic
 *   permissions; the broker closes the channel with ACCESS_REFUSED otherwise); a service writes
 *   into the retry exchange only under its own queues' names.
 * - bind: a service binds only the patterns its topology declares (topic read permissions), so it
 *   cannot attach a queue to another service's operations.
 * - `amq.default` (write) only for services with queues: RabbitMQ requires it to reply over direct
 *   reply-to and to declare a queue whose dead-letter exchange is the default one. It cannot be
 *   limited per queue, which is why consumers trust a message arriving from it only when its
 *   `user_id` is their own (see authorize.ts).
 *
 * @param topologies every fleet service's topology (validated, as defineTopology returns it)
 */
export function brokerDefinitions(topologies: Record<FleetService, Topology>, vhost = '/'): BrokerDefinitions {
  const fleetExchanges = [Exchanges.commands, Exchanges.events, RETRY_EXCHANGE, DELAYED_EXCHANGE];
  const defs: BrokerDefinitions = {
    users: [],
    vhosts: [{ name: vhost }],
    permissions: [],
    topic_permissions: [],
    ...topologyDefinitions(Object.values(topologies), vhost),
    parameters: [],
    global_parameters: [],
  };
  for (const role of roles) {
    defs.users.push({ name: role, password_hash: '', hashing_algorithm: 'rabbit_password_hashing_sha256', tags: [], limits: {} });
    const topology = (fleetServices as readonly string[]).includes(role) ? topologies[role as FleetService] : undefined;
    const queues = (topology?.queues ?? []) as ResolvedQueueSpec[];
    const tiers = topology ? [...new Set(delayQueues(topology).map((d) => d.service))] : [];
    // The service's delay tiers are its own queues too: a tier holds only its service's copies.
    const own = [...queues.map(queueFamily), ...tiers.map((svc) => `${escapeRegExp(svc)}\\.delay\\.[0-9]+`)];
    const bindsOn = (exchange: string) => queues.flatMap((q) => q.bindings.filter((b) => b.exchange === exchange).map((b) => literal(b.pattern)));
    const eventQueues = queues.filter((q) => q.kind === 'events');
    // Into wallet.retry a service writes its DLQs' names and `<queue>.delay.<ms>` of its event
    // queues; it binds its DLQs and its tiers (`<service>.#.delay.<ms>`).
    const retryWrite = [...queues.map((q) => escapeRegExp(dlqName(q.name))), ...eventQueues.map((q) => `${escapeRegExp(q.name)}\\.delay\\.[0-9]+`)];
    const retryRead = [...queues.map((q) => escapeRegExp(dlqName(q.name))), ...tiers.map((svc) => `${escapeRegExp(svc)}\\.#\\.delay\\.[0-9]+`)];
    // Out of wallet.delayed each event queue takes `<queue>.delay.*`; nobody writes into it.
    const delayedRead = eventQueues.map((q) => literal(`${q.name}.delay.*`));
    const exchanges = fleetExchanges.map(escapeRegExp);
    if (topology) {
      defs.permissions.push({
        user: role,
        vhost,
        // Every service asserts the fleet's exchanges at start (a declare needs configure).
        configure: anyOf([...exchanges, ...own]),
        write: anyOf([...exchanges, ...own, ...(queues.length > 0 ? ['amq\\.default'] : [])]),
        read: anyOf([...exchanges, ...own]),
      });
    } else {
      // External roles consume nothing but their direct reply-to pseudo queue, which needs no
      // permission; configure on the fleet's exchanges only because createBroker() asserts them.
      defs.permissions.push({
        user: role,
        vhost,
        configure: anyOf(exchanges),
        write: anyOf([escapeRegExp(Exchanges.commands), escapeRegExp(Exchanges.events)]),
        read: NOTHING,
      });
    }
    defs.topic_permissions.push(
      { user: role, vhost, exchange: Exchanges.commands, write: anyOf(callableOperations(role)), read: anyOf(bindsOn(Exchanges.commands)) },
      { user: role, vhost, exchange: Exchanges.events, write: anyOf(publishableEvents(role)), read: anyOf(bindsOn(Exchanges.events)) },
      { user: role, vhost, exchange: RETRY_EXCHANGE, write: anyOf(retryWrite), read: anyOf(retryRead) },
      { user: role, vhost, exchange: DELAYED_EXCHANGE, write: NOTHING, read: anyOf(delayedRead) },
    );
  }
  return defs;
}
