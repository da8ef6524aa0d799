import {
  ErrorCode,
  Exchanges,
  FleetError,
  Headers,
  eventNameOf,
  mayCall,
  mayPublish,
  operations,
  roles,
  type OperationName,
  type Role,
} from '@wallet-fleet/contracts';
import type { ConsumeMessage } from 'amqplib';
import { headerString } from './headers.js';
import { DELAYED_EXCHANGE, RETRY_EXCHANGE } from './topology.js';

/**
 * Who is who on the broker: the roles a broker user holds. By default a user holds the role of its
 * own name (user `wallet` is the wallet service, user `backend` the product's backend); a deployment
 * whose users are named otherwise maps them with `BROKER_USER_ROLES=svc-wallet-prod:wallet,...`.
 */
export interface BrokerAccess {
  rolesOf(user: string | undefined): readonly Role[];
}

const isRole = (r: string): r is Role => (roles as readonly string[]).includes(r);

/**
 * Reads `BROKER_USER_ROLES` (`user:role,user:role`) from `env`.
 *
 * @throws Error naming the variable when a pair is malformed or names an unknown role.
 */
export function brokerAccessFromEnv(env: NodeJS.ProcessEnv = process.env): BrokerAccess {
  const mapped = new Map<string, Role[]>();
  for (const pair of (env.BROKER_USER_ROLES ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [user, role, ...rest] = pair.split(':').map((s) => s.trim());
    if (!user || !role || rest.length > 0) throw new Error(`BROKER_USER_ROLES: expected user:role pairs separated by commas, got "${pair}"`);
    if (!isRole(role)) throw new Error(`BROKER_USER_ROLES: ${role} is not a role (one of ${roles.join(', ')})`);
    mapped.set(user, [...(mapped.get(user) ?? []), role]);
  }
  return {
    rolesOf(user) {
      if (user === undefined || user === '') return [];
      return mapped.get(user) ?? (isRole(user) ? [user] : []);
    },
  };
}

/** The broker user an AMQP URL logs in as (amqplib's default is guest). */
export function brokerUserOf(url: string): string {
  return decodeURIComponent(new URL(url).username) || 'guest';
}

/** Who sent a delivery: its verified broker user (`user_id`) and the roles that user holds. */
export interface Caller {
  user: string | undefined;
  roles: readonly Role[];
}

/** How one delivery passed the check: who sent it, the routing key to act on, or why it is refused. */
export type Authorization = { caller: Caller; routingKey: string; refused?: undefined } | { caller: Caller; routingKey: string; refused: FleetError };

/**
 * Decides whether a delivery may be handled, from its `user_id` (which RabbitMQ guarantees is the
 * publisher's broker user) and the catalogue: a request needs a caller role the operation names,
 * an event a producer role the event names. A message without `user_id` holds no role.
 *
 * A delivery that did not come from `wallet.commands` / `wallet.events` (`wallet.delayed` after a
 * delay tier, the retry exchange, the default exchange) is one of our own retry copies only when its `user_id` is the
 * consuming connection's own user; only then is its `x-original-routing-key` believed (and the check of its
 * first attempt kept). Anyone who may write to the default exchange could otherwise claim any
 * routing key by header.
 *
 * @param self the consuming service and its broker user
 * Refusals are FleetError FORBIDDEN (not retryable).
 */
export function authorizeDelivery(msg: ConsumeMessage, kind: 'rpc' | 'events', self: { service: string; user: string }, access: BrokerAccess): Authorization {
  const user = headerString(msg.properties.userId);
  const held = access.rolesOf(user);
  const caller: Caller = { user, roles: held };
  const exchange = msg.fields.exchange;
  if (exchange !== Exchanges.commands && exchange !== Exchanges.events) {
    const original = headerString((msg.properties.headers ?? {})[Headers.originalRoutingKey]);
    const ours = user !== undefined && user === self.user && (exchange === '' || exchange === RETRY_EXCHANGE || exchange === DELAYED_EXCHANGE);
    if (ours) return { caller, routingKey: original ?? msg.fields.routingKey };
    return {
      caller,
      routingKey: msg.fields.routingKey,
      refused: new FleetError(
        ErrorCode.FORBIDDEN,
        `${describe(user)} may not send into ${self.service}'s queues through ${exchange || 'the default exchange'}`,
      ),
    };
  }
  const routingKey = msg.fields.routingKey;
  // A key outside the catalogue is refused later, as it always was (UNKNOWN_OPERATION, no_handler).
  if (kind === 'rpc' ? !(routingKey in operations) : eventNameOf(routingKey) === undefined) return { caller, routingKey };
  const allowed = kind === 'rpc' ? held.some((r) => mayCall(r, routingKey as OperationName)) : held.some((r) => mayPublish(r, routingKey));
  if (allowed) return { caller, routingKey };
  const what = kind === 'rpc' ? 'call' : 'publish';
  return { caller, routingKey, refused: new FleetError(ErrorCode.FORBIDDEN, `${describe(user)} may not ${what} ${routingKey}`) };
}

const describe = (user: string | undefined) => (user ? `broker user ${user}` : 'a message without user_id');
