export * from './errors.js';
export * from './common.js';
export * from './protocol.js';
export * from './audit.js';
export * from './wallet.js';
export * from './provisioning.js';
export * from './deposits.js';
export * from './catalogue.js';
export { buildAsyncApi } from './asyncapi.js';
