export { createKmsCustody, type KmsCustody, type KmsCustodyOptions } from './custody.js';
export { toEthSignature, type KeyAlgorithm, type EcdsaSignature, type EthSignature } from './keys.js';
