export { backingServices, type BackingServices } from './backing.js';
export { applyBrokerDefinitions, createFleetVhost, createVhost, rabbitAdmin, type DefinitionsToApply, type TestVhost, type QueueInfo } from './rabbit.js';
export { createSchemaName, type TestSchema } from './postgres.js';
export { rawAmqp, type RawAmqp } from './amqp.js';
export { vhostPerTest } from './hooks.js';
export { runNode, type ProcessResult } from './process.js';
export { waitFor } from './wait.js';
export { importDefinitions, localCluster, startLocalCluster, startScratchNode, type LocalCluster, type RabbitNode } from './rabbit-nodes.js';
