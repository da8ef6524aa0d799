// Runs a local anvil node (chain id 31337) on EVM_RUNTIME_PORT (default 8545) and
// EVM_RUNTIME_HOST (default 127.0.0.1) until SIGINT/SIGTERM, for the fleet runner and the compose
// file: NOT FOR PRODUCTION. It starts the binary exactly as the tests do.
import { startAnvil } from './anvil.js';

const raw = process.env.EVM_RUNTIME_PORT ?? '8545';
const port = Number(raw);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`EVM_RUNTIME_PORT must be a port number, got ${JSON.stringify(raw)}`);
  process.exit(2);
}
const anvil = await startAnvil({ port, host: process.env.EVM_RUNTIME_HOST || '127.0.0.1' }).catch((e: unknown) => {
  console.error(`anvil: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
console.log(JSON.stringify({ msg: 'anvil listening', url: anvil.url, chainId: 31337 }));
let stopping = false;
// The runner watches this process, not the node: a node that dies must take this process with it.
void anvil.exited.then(() => {
  if (stopping) return;
  console.error('anvil: the node exited');
  process.exit(1);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void anvil.stop().then(() => process.exit(0));
  });
}
