// Runs the local Solana JSON-RPC runtime (litesvm) until SIGINT/SIGTERM. NOT FOR PRODUCTION: state
// lives in memory and is gone on exit.
import { startSolanaRuntime } from './solana/runtime.js';

const raw = process.env.SOLANA_RUNTIME_PORT ?? '8899';
const port = Number(raw);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`SOLANA_RUNTIME_PORT must be a port number, got ${JSON.stringify(raw)}`);
  process.exit(2);
}
const runtime = await startSolanaRuntime({ port, host: process.env.SOLANA_RUNTIME_HOST ?? '127.0.0.1' });
console.log(JSON.stringify({ msg: 'solana runtime listening', url: runtime.url }));
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void runtime.stop().then(() => process.exit(0));
  });
}
