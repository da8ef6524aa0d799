export { startKmsEmulator, NOT_FOR_PRODUCTION_BANNER, type KmsEmulator, type KmsEmulatorOptions } from './server.js';
export { SUPPORTED_ALGORITHMS } from './keys.js';
