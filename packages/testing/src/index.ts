export { backingServices, type BackingServices } from './backing.js';
export { createVhost, rabbitAdmin, type TestVhost, type QueueInfo } from './rabbit.js';
export { createSchemaName, type TestSchema } from './postgres.js';
export { waitFor } from './wait.js';
