export { createKmsCustody, type CreateKeyOptions, type KmsCustody, type KmsCustodyOptions, type ProtectionLevel } from './custody.js';
export { toEthSignature, type KeyAlgorithm, type EcdsaSignature, type EthSignature } from './keys.js';
