export { solanaAddress, ethereumAddress, aptosAddress, isValidAddress, type Chain } from './addresses.js';
export { localEd25519Signer, localSecp256k1Signer, type Ed25519Signer, type Secp256k1Signer } from './signers.js';
export { createSolanaAdapter, transactionSignature, type SolanaAdapter, type SolanaAdapterOptions, type SolanaTokenBalance } from './solana/adapter.js';
export { createEvmAdapter, signEvmTransaction, type EvmAdapter, type EvmAdapterOptions, type EvmFinality } from './evm.js';
export { signAptosRawTransaction, createAptosAdapter, type AptosAdapter, type AptosAdapterOptions } from './aptos.js';
export type { NativeTransfer, TransactionTransfers, TransferPosition, TransferAsset, OnChainTransfer, Finality, TransactionReport } from './transfers.js';
export { judgeClaim, creditKey, type DepositClaim, type ClaimVerdict } from './claims.js';
