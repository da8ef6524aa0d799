export { createKmsCustody, type CreateKeyOptions, type KmsCustody, type KmsCustodyOptions, type ProtectionLevel } from './custody.js';
export { toEthSignature, verifyEd25519, type KeyAlgorithm, type EcdsaSignature, type EthSignature } from './keys.js';
