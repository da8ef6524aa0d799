import { Exchanges, SERVICE_IN_KEY, events, fleetServices, operations, roles, type FleetService, type Role } from '@wallet-fleet/contracts';
import { RETRY_EXCHANGE, dlqName, type ResolvedQueueSpec, type Topology } from './topology.js';

/** RabbitMQ's definitions format (the parts we generate), as `rabbitmqctl import_definitions` reads it. */
export interface BrokerDefinitions {
  rabbit_version?: string;
  users: Array<{ name: string; password_hash: string; hashing_algorithm: string; tags: string[]; limits: Record<string, never> }>;
  vhosts: Array<{ name: string }>;
  permissions: Array<{ user: string; vhost: string; configure: string; write: string; read: string }>;
  topic_permissions: Array<{ user: string; vhost: string; exchange: string; write: string; read: string }>;
  exchanges: Array<{ name: string; vhost: string; type: 'topic'; durable: true; auto_delete: false; internal: false; arguments: Record<string, never> }>;
  queues: never[];
  bindings: never[];
  parameters: never[];
  policies: never[];
  global_parameters: never[];
}

/** A regex that matches no name and no routing key the fleet uses (RabbitMQ reads `""` as "nothing" only for vhost permissions). */
const NOTHING = '^$';

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const anyOf = (alternatives: string[]) => (alternatives.length === 0 ? NOTHING : `^(${[...new Set(alternatives)].sort().join('|')})$`);

/** A queue of the topology with the names derived from it (`.dlq`, `.retry.<n>`), as one regex alternative. */
function queueFamily(q: ResolvedQueueSpec): string {
  return `${escapeRegExp(q.name)}(\\.dlq${q.kind === 'events' ? '|\\.retry\\.[0-9]+' : ''})?`;
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
  const fleetExchanges = [Exchanges.commands, Exchanges.events, RETRY_EXCHANGE];
  const defs: BrokerDefinitions = {
    users: [],
    vhosts: [{ name: vhost }],
    permissions: [],
    topic_permissions: [],
    exchanges: fleetExchanges.map((name) => ({ name, vhost, type: 'topic', durable: true, auto_delete: false, internal: false, arguments: {} })),
    queues: [],
    bindings: [],
    parameters: [],
    policies: [],
    global_parameters: [],
  };
  for (const role of roles) {
    defs.users.push({ name: role, password_hash: '', hashing_algorithm: 'rabbit_password_hashing_sha256', tags: [], limits: {} });
    const topology = (fleetServices as readonly string[]).includes(role) ? topologies[role as FleetService] : undefined;
    const queues = (topology?.queues ?? []) as ResolvedQueueSpec[];
    const own = queues.map(queueFamily);
    const bindsOn = (exchange: string) => queues.flatMap((q) => q.bindings.filter((b) => b.exchange === exchange).map((b) => literal(b.pattern)));
    const retryKeys = queues.flatMap((q) => [escapeRegExp(dlqName(q.name)), ...(q.kind === 'events' ? [`${escapeRegExp(q.name)}\\.retry\\.[0-9]+`] : [])]);
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
      { user: role, vhost, exchange: RETRY_EXCHANGE, write: anyOf(retryKeys), read: anyOf(retryKeys) },
    );
  }
  return defs;
}
