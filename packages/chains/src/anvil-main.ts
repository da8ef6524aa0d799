// Runs a local anvil node (chain id 31337) on EVM_RUNTIME_PORT (default 8545) until SIGINT/SIGTERM,
// for the fleet command: it resolves the platform binary the same way the tests do.
import { startAnvil } from './evm.js';

const raw = process.env.EVM_RUNTIME_PORT ?? '8545';
const port = Number(raw);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`EVM_RUNTIME_PORT must be a port number, got ${JSON.stringify(raw)}`);
  process.exit(2);
}
const anvil = await startAnvil({ port });
console.log(JSON.stringify({ msg: 'anvil listening', url: anvil.url, chainId: 31337 }));
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void anvil.stop().then(() => process.exit(0));
  });
}
