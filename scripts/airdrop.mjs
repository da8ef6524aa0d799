#!/usr/bin/env node
// Funds a Solana address on the local runtime (development only):
//
//   node scripts/airdrop.mjs <solana address> <lamports>
//
// requestAirdrop then getBalance against SOLANA_RPC_URL (default http://127.0.0.1:8899), through the
// Solana adapter of packages/chains (build first: `pnpm build`, which scripts/setup.sh runs).
// Prints {"signature":…,"balance":"…"}; exit 1 when the node refuses or does not answer, 2 on bad usage.
const [address, lamports] = process.argv.slice(2);
if (
  !address ||
  !lamports ||
  !/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(address) ||
  !/^\d+$/.test(lamports) ||
  BigInt(lamports) === 0n ||
  BigInt(lamports) > BigInt(Number.MAX_SAFE_INTEGER)
) {
  process.stderr.write(
    'usage: node scripts/airdrop.mjs <solana address> <lamports>   (1 to 9007199254740991)\n  e.g. node scripts/airdrop.mjs 9xQe…base58 2000000000   (2 SOL)\n',
  );
  process.exit(2);
}
// Loaded after the usage check: the chain adapters take a moment to load.
const { createSolanaAdapter } = await import('@wallet-fleet/chains');
const url = process.env.SOLANA_RPC_URL || 'http://127.0.0.1:8899';
const solana = createSolanaAdapter({ rpcUrl: url });

try {
  const signature = await solana.requestAirdrop(address, BigInt(lamports));
  const balance = await solana.getBalance(address);
  process.stdout.write(`${JSON.stringify({ signature, balance: String(balance) })}\n`);
} catch (/** @type {any} */ e) {
  const hint = e?.code === 'UNAVAILABLE' ? ` (${url}: is the fleet running?)` : '';
  process.stderr.write(`airdrop: ${e?.message ?? e}${hint}\n`);
  process.exit(1);
}
