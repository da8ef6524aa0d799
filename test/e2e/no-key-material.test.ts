// Private keys never leave the KMS: after a wallet's whole life (create on every chain, sign,
// transfer), none of its private key bytes appear in the service's logs, database rows, published
// messages, replies or metrics. The KMS emulator's own key files are the only place they exist.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { localEd25519Signer, solanaAddress } from '@wallet-fleet/chains';
import { type Anvil, type SolanaRuntime, startAnvil, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import { backingServices, createSchemaName, createVhost, waitFor } from '@wallet-fleet/testing';
import amqp from 'amqplib';
import bs58 from 'bs58';
import pg from 'pg';
import { type ServiceProcess, startService } from './support/service-process.js';

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : [p];
  });
}

/** Every private key the emulator holds, in the encodings a leak would likely use. */
function keyForms(dataDir: string): string[] {
  const hexes = files(dataDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(f, 'utf8')) as { privateKeyHex?: string })
    .map((r) => r.privateKeyHex)
    .filter((h): h is string => typeof h === 'string' && h.length >= 64);
  return hexes.flatMap((hex) => {
    const bytes = Buffer.from(hex, 'hex');
    // The raw 32-byte scalar/seed inside any PKCS8 wrapping, too.
    const seed = bytes.subarray(bytes.length - 32);
    return [hex, seed.toString('hex'), seed.toString('base64'), bs58.encode(seed), bytes.toString('base64')].map((s) => s.toLowerCase());
  });
}

describe('key material', function () {
  this.timeout(90_000);

  it('should appear nowhere but in the KMS: not in logs, database rows, messages, replies or metrics', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kms-scan-'));
    const kms = await startKmsEmulator({ port: 0, dataDir });
    const solana: SolanaRuntime = await startSolanaRuntime({ port: 0 });
    const anvil: Anvil = await startAnvil({ port: 0 });
    const vhost = await createVhost('keyscan');
    const schema = await createSchemaName('keyscan');
    const { databaseUrl } = await backingServices();
    const conn = await amqp.connect(vhost.url);
    const seen: string[] = [];
    let service: ServiceProcess | undefined;
    const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    try {
      const ch = await conn.createConfirmChannel();
      await ch.assertExchange('wallet.events', 'topic', { durable: true });
      const q = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(q.queue, 'wallet.events', '#');
      await ch.consume(q.queue, (m) => m && seen.push(m.content.toString(), JSON.stringify(m.properties.headers ?? {})), { noAck: true });
      service = await startService('wallet', {
        AMQP_URL: vhost.url,
        DATABASE_URL: databaseUrl,
        DATABASE_SCHEMA: schema.schema,
        KMS_ENDPOINT: kms.endpoint,
        SOLANA_RPC_URL: solana.url,
        EVM_RPC_URL: anvil.url,
        LOG_LEVEL: 'trace',
      });
      const replies: string[] = [];
      await ch.consume('amq.rabbitmq.reply-to', (m) => m && replies.push(m.content.toString()), { noAck: true });
      const call = async (op: string, body: unknown) => {
        const before = replies.length;
        ch.publish('wallet.commands', op, Buffer.from(JSON.stringify(body)), { replyTo: 'amq.rabbitmq.reply-to', correlationId: op, userId: vhost.user });
        await waitFor(() => replies.length > before, { timeoutMs: 30_000, what: `reply to ${op}` });
        return JSON.parse(replies[replies.length - 1]!);
      };
      const wallets = [];
      for (const chain of ['SOL', 'ETH', 'APTOS']) wallets.push((await call('wallet.management.create', { userId: 'scan', chain })).result);
      const sol = wallets[0];
      solana.airdrop(sol.address, 1_000_000_000n);
      const sent = await call('wallet.transaction.transferSol', {
        userId: 'scan',
        walletId: sol.walletId,
        recipient: solanaAddress(localEd25519Signer().publicKey),
        amount: '1000000',
      });
      assert.equal(sent.ok, true, JSON.stringify(sent));
      await call('wallet.balance.get', { userId: 'scan', walletId: sol.walletId });
      await waitFor(() => seen.length >= 2 * 6, { what: 'the wallet events and audit events' });

      const forms = keyForms(dataDir);
      assert.ok(forms.length >= 15, `found ${forms.length / 5} keys in the emulator`);
      const tables = await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1`, [schema.schema]);
      const dump: string[] = [];
      for (const { table_name } of tables.rows) {
        const rows = await db.query(`SELECT * FROM "${schema.schema}"."${table_name}"`);
        dump.push(JSON.stringify(rows.rows, (_k, v) => (v?.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v)));
      }
      const metrics = await (await fetch(service.url('/metrics'))).text();
      const haystacks: Record<string, string> = {
        logs: service.logs.join('\n'),
        database: dump.join('\n'),
        messages: seen.join('\n'),
        replies: replies.join('\n'),
        metrics,
      };
      assert.ok(haystacks.logs!.length > 1000 && haystacks.database!.includes(sol.address), 'the scan looks at real data');
      for (const [where, text] of Object.entries(haystacks)) {
        const lower = text.toLowerCase();
        for (const form of forms) assert.ok(!lower.includes(form), `private key material found in ${where}`);
      }
    } finally {
      await service?.stop();
      await conn.close();
      await db.end();
      await vhost.drop();
      await schema.drop();
      await anvil.stop();
      await solana.stop();
      await kms.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
