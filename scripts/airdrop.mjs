#!/usr/bin/env node
// Funds a Solana address on the local runtime (development only):
//
//   node scripts/airdrop.mjs <solana address> <lamports>
//
// JSON-RPC requestAirdrop against SOLANA_RPC_URL (default http://127.0.0.1:8899), then getBalance.
// Prints {"signature":…,"balance":"…"}; exit 1 when the node refuses or does not answer, 2 on bad usage.

const [address, lamports] = process.argv.slice(2);
if (!address || !lamports || !/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(address) || !/^\d+$/.test(lamports)) {
  process.stderr.write('usage: node scripts/airdrop.mjs <solana address> <lamports>\n  e.g. node scripts/airdrop.mjs 9xQe…base58 2000000000   (2 SOL)\n');
  process.exit(2);
}
const url = process.env.SOLANA_RPC_URL || 'http://127.0.0.1:8899';

async function rpc(method, params) {
  let res;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    throw new Error(`no answer from ${url}: ${e.cause?.message ?? e.message} (is the fleet running?)`);
  }
  const body = await res.json().catch(() => undefined);
  if (body?.error) throw new Error(`${method}: ${body.error.message ?? JSON.stringify(body.error)}`);
  if (!res.ok || body === undefined) throw new Error(`${method}: HTTP ${res.status}`);
  return body.result;
}

try {
  // Numbers above 2^53 lose precision in JSON: lamports go as a number only when safe.
  const amount = BigInt(lamports) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(lamports) : lamports;
  const signature = await rpc('requestAirdrop', [address, amount]);
  const balance = await rpc('getBalance', [address, { commitment: 'confirmed' }]);
  const value = typeof balance === 'object' && balance !== null ? balance.value : balance;
  process.stdout.write(`${JSON.stringify({ signature, balance: String(value) })}\n`);
} catch (e) {
  process.stderr.write(`airdrop: ${e.message}\n`);
  process.exit(1);
}
