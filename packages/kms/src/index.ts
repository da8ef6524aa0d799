export { createKmsCustody, type KmsCustody, type KmsCustodyOptions } from './custody.js';
export { toEthSignature, verifyEd25519, type KeyAlgorithm, type EcdsaSignature, type EthSignature } from './keys.js';
