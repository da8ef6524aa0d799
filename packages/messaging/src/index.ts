export { createBroker } from './broker.js';
export { defer } from './errors.js';
export { defineTopology, type QueueSpec, type Topology } from './topology.js';
export { brokerAccessFromEnv, brokerUserOf, type BrokerAccess, type Caller } from './authorize.js';
export { brokerDefinitions, topologyDefinitions, type BrokerDefinitions } from './definitions.js';
export { computeRetryDelay, type RetryPolicy, type ErrorHistoryEntry } from './retry.js';
export type { PublishProps } from './publisher.js';
export type {
  Broker,
  BrokerOptions,
  BatchHandler,
  CommandHandlers,
  EventHandlers,
  Handler,
  HandlerContext,
} from './types.js';
export { createOutbox, outboxPrivilegesSql, outboxTableSql, type Outbox, type OutboxMessage, type OutboxOptions } from './outbox.js';
export { brokerCheck } from './check.js';
export { BROKER_DEATH_HEADERS } from './headers.js';
export { brokerComponent, outboxComponent } from './components.js';
export { Batcher } from './batcher.js';
