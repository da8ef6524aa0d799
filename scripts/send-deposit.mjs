#!/usr/bin/env node
// Posts one deposit webhook to the webhooks service, signed as a Standard Webhooks sender signs it
// (HMAC-SHA256 over `id.timestamp.body` with the secret's base64 key), and prints the answer.
//
//   node scripts/send-deposit.mjs '{"chain":"ETH","txHash":"0x…","token":"native","amount":"1000","toAddress":"0x…"}'
//
// Environment: WEBHOOKS_URL (default http://127.0.0.1:8084), WEBHOOK_SECRET (default: the development
// secret in .fleet/webhook-secret that scripts/fleet.sh gives the service). Exit 0 on a 2xx answer,
// 1 otherwise, 2 on bad usage.
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const body = process.argv[2];
if (!body || process.argv.length > 3) {
  process.stderr.write(`usage: node scripts/send-deposit.mjs '<json body>'\n`);
  process.exit(2);
}
let secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  try {
    secret = readFileSync(join(repoRoot, '.fleet', 'webhook-secret'), 'utf8').trim();
  } catch {
    process.stderr.write('send-deposit: no WEBHOOK_SECRET and no .fleet/webhook-secret (start the fleet with scripts/fleet.sh first)\n');
    process.exit(2);
  }
}
if (!secret.startsWith('whsec_')) {
  process.stderr.write('send-deposit: WEBHOOK_SECRET must start with whsec_\n');
  process.exit(2);
}
const id = `msg_${randomUUID()}`;
const timestamp = String(Math.floor(Date.now() / 1000));
const signature = createHmac('sha256', Buffer.from(secret.slice(6), 'base64')).update(`${id}.${timestamp}.${body}`).digest('base64');
const url = `${process.env.WEBHOOKS_URL ?? 'http://127.0.0.1:8084'}/webhooks/deposits`;
try {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` },
    body,
  });
  process.stdout.write(`${res.status} ${await res.text()}\n`);
  process.exit(res.ok ? 0 : 1);
} catch (e) {
  process.stderr.write(`send-deposit: ${url}: ${e.cause?.message ?? e.message}\n`);
  process.exit(1);
}
