#!/usr/bin/env node
// Runs the anvil binary of @foundry-rs/anvil with the given arguments (NOT FOR PRODUCTION), for places
// that cannot name its version-specific path, e.g. the compose file:
//   node scripts/anvil.mjs --host 0.0.0.0 --port 8545 --chain-id 31337 --quiet
// SIGINT/SIGTERM are passed on; the exit code is anvil's.
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { anvilBinary } from './lib/anvil-binary.mjs';

const bin = anvilBinary(resolve(dirname(fileURLToPath(import.meta.url)), '..'));
if (!bin) {
  console.error('anvil: the binary of @foundry-rs/anvil is missing (pnpm install, or set ANVIL_BIN)');
  process.exit(1);
}
const child = spawn(bin, process.argv.slice(2), { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('error', (e) => {
  console.error(`anvil: ${e.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
