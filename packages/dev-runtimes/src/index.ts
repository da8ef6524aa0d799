// Development and test runtimes: NOT FOR PRODUCTION. Services never depend on this package (a test
// in test/e2e/production-surface.test.ts keeps it out of every service's production install).
export { startSolanaRuntime, type SolanaRuntime, type SolanaRuntimeOptions } from './solana/runtime.js';
export { startAnvil, type Anvil, type AnvilOptions } from './anvil.js';
