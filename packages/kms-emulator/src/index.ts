export { startKmsEmulator, type KmsEmulator, type KmsEmulatorOptions } from './server.js';
