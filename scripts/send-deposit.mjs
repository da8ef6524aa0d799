#!/usr/bin/env node
// Posts one deposit webhook to the webhooks service, signed as a Standard Webhooks sender signs it
// (HMAC-SHA256 over `id.timestamp.body` with the secret's base64 key), and prints the answer.
//
//   node scripts/send-deposit.mjs '{"chain":"ETH","txHash":"0x…","token":"native","amount":"1000","toAddress":"0x…"}'
//
// Environment: WEBHOOKS_URL (default http://127.0.0.1:8084); WEBHOOK_SECRETS, the variable the service
// reads and in its format (comma-separated `sender=whsec_<base64>` or bare `whsec_<base64>`; the first one signs, as a sender signs with
// the current secret while the service still accepts the old ones); unset, the development secret in
// .fleet/webhook-secret that scripts/fleet.mjs gives the service. Exit 0 on a 2xx answer, 1 otherwise
// (a wrong secret: 401), 2 on bad usage.
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const devSecretFile = join(repoRoot, '.fleet', 'webhook-secret');

/** @param {string} text @returns {never} */
function usage(text) {
  process.stderr.write(`send-deposit: ${text}\n`);
  process.exit(2);
}

const body = process.argv[2];
if (!body || process.argv.length > 3 || body === '--help' || body === '-h') {
  process.stderr.write(`usage: node scripts/send-deposit.mjs '<json body>'   (WEBHOOK_SECRETS, WEBHOOKS_URL: see the top of this file)\n`);
  process.exit(2);
}
// The old name of the variable: silently signing with the development secret instead would answer
// 200 to someone checking that a wrong secret is refused.
if (process.env.WEBHOOK_SECRET !== undefined && process.env.WEBHOOK_SECRETS === undefined) {
  usage('WEBHOOK_SECRET is not read; set WEBHOOK_SECRETS (the variable the webhooks service reads)');
}
let secrets = process.env.WEBHOOK_SECRETS;
let source = 'WEBHOOK_SECRETS';
if (secrets === undefined || secrets.trim() === '') {
  try {
    secrets = readFileSync(devSecretFile, 'utf8');
    source = '.fleet/webhook-secret';
  } catch {
    usage('no WEBHOOK_SECRETS and no .fleet/webhook-secret (start the fleet with scripts/fleet.sh first)');
  }
}
// Parsed as the service parses it (services/webhooks/src/config.ts).
// Entries are `sender=whsec_…` or a bare `whsec_…`; the sender name only matters to the service.
const list = secrets
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0)
  .map((s) => s.replace(/^[a-z0-9][a-z0-9_.-]{0,62}=(?=whsec_)/, ''));
const malformed = list.length === 0 || !list.every((s) => /^whsec_[A-Za-z0-9+/]+={0,2}$/.test(s) && Buffer.from(s.slice(6), 'base64').length >= 16);
if (malformed) usage(`${source} must be comma-separated secrets, each whsec_ followed by base64 of at least 16 bytes`);
const secret = /** @type {string} */ (list[0]);

const id = `msg_${randomUUID()}`;
const timestamp = String(Math.floor(Date.now() / 1000));
const signature = createHmac('sha256', Buffer.from(secret.slice(6), 'base64'))
  .update(`${id}.${timestamp}.${body}`)
  .digest('base64');
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
  const err = /** @type {Error & { cause?: Error }} */ (e);
  process.stderr.write(`send-deposit: ${url}: ${err.cause?.message ?? err.message}\n`);
  process.exit(1);
}
