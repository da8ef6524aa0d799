export { createKmsCustody, type KmsCustody, type KmsCustodyOptions } from './custody.js';
export { toEthSignature, ethereumAddressOf, type KeyAlgorithm, type EcdsaSignature, type EthSignature } from './keys.js';
