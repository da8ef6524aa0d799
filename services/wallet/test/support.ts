import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { localEd25519Signer, solanaAddress } from '@wallet-fleet/chains';
import { FleetError } from '@wallet-fleet/contracts';
import type { SolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { type Broker, createBroker, defineTopology } from '@wallet-fleet/messaging';
import { fileURLToPath } from 'node:url';
import { createLogger, migrate } from '@wallet-fleet/service-kit';
import { backingServices, createSchemaName, type TestSchema, type TestVhost } from '@wallet-fleet/testing';
import { Connection, PublicKey } from '@solana/web3.js';
import amqp, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import pg from 'pg';
import { createWalletService } from '../src/app.js';
import { loadWalletConfig } from '../src/config.js';

const silent = createLogger({ service: 'test', level: 'silent' });

/** The FleetError a call that must be refused fails with (a success, or another error, fails the test). */
export const refusal = (p: Promise<unknown>): Promise<FleetError> =>
  p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => {
      if (!(e instanceof FleetError)) throw e;
      return e;
    },
  );

export type WalletService = ReturnType<typeof createWalletService>;

/**
 * A fresh schema with the wallet's migrations applied and no service: `runtime` logs in as the
 * runtime role (what the service may do), `owner` as the migration role (what a test arranges).
 */
export async function migratedWalletSchema(prefix: string): Promise<{ schema: TestSchema; runtime: pg.Pool; owner: pg.Pool; end(): Promise<void> }> {
  const schema = await createSchemaName(prefix);
  await migrate({
    databaseUrl: schema.migrationUrl,
    runtimeUrl: schema.runtimeUrl,
    dir: fileURLToPath(new URL('../migrations', import.meta.url)),
    schema: schema.schema,
    logger: silent,
  });
  const pool = (url: string, max: number) => new pg.Pool({ connectionString: url, options: `-c search_path=${schema.schema}`, max });
  const runtime = pool(schema.runtimeUrl, 4);
  const owner = pool(schema.migrationUrl, 1);
  return {
    schema,
    runtime,
    owner,
    async end() {
      await runtime.end();
      await owner.end();
      await schema.drop();
    },
  };
}

/**
 * Starts a wallet service as the fleet runs it: as its own broker user in `vhost`, with its
 * migration and runtime roles on `schema`, development runtimes allowed (FLEET_DEV_MODE). `env`
 * adds what the test is about (KMS_ENDPOINT, chain URLs, limits) and may override the rest.
 */
export async function startWalletService(vhost: TestVhost, schema: TestSchema, env: Record<string, string>): Promise<WalletService> {
  const { redisUrl } = await backingServices();
  // The broker reads its role map (BROKER_USER_ROLES) from the process environment when it is
  // created, as in production: given in `env`, it is set for that moment only.
  const roles = process.env.BROKER_USER_ROLES;
  if (env.BROKER_USER_ROLES !== undefined) process.env.BROKER_USER_ROLES = env.BROKER_USER_ROLES;
  let service: WalletService;
  try {
    service = createWalletService(
      loadWalletConfig({
        FLEET_DEV_MODE: 'true',
        AMQP_URL: vhost.as('wallet'),
        ...schema.env,
        REDIS_URL: redisUrl,
        HTTP_PORT: '0',
        LOG_LEVEL: 'silent',
        ...env,
      }),
      silent,
    );
  } finally {
    if (roles === undefined) delete process.env.BROKER_USER_ROLES;
    else process.env.BROKER_USER_ROLES = roles;
  }
  await service.start();
  return service;
}

/** A chain the test does not use: a closed port, so that a call to it fails at once. */
export const unusedChains = { EVM_RPC_URL: 'http://127.0.0.1:9', APTOS_NODE_URL: 'http://127.0.0.1:9/v1' };

/** A started caller of the wallet service as broker user `user` (the product's backend, operators, an approver). */
export async function caller(vhost: TestVhost, user: string): Promise<Broker> {
  const b = createBroker({ url: vhost.as(user), service: `test-${user}`, logger: silent, topology: defineTopology({ queues: [] }) });
  await b.start();
  return b;
}

/**
 * Everything the service publishes on wallet.events under `patterns`, as another team would see
 * it: an exclusive queue of the test's own. Close the returned connection after the suite.
 */
export async function watchWalletEvents(vhost: TestVhost, patterns: string[], seen: (m: ConsumeMessage) => void): Promise<ChannelModel> {
  const conn = await amqp.connect(vhost.url);
  const ch = await conn.createChannel();
  await ch.assertExchange('wallet.events', 'topic', { durable: true });
  const q = await ch.assertQueue('', { exclusive: true });
  for (const p of patterns) await ch.bindQueue(q.queue, 'wallet.events', p);
  await ch.consume(q.queue, (m) => m && seen(m), { noAck: true });
  return conn;
}

/**
 * SOL transfers through the wallet service as the backend asks for them. `parts` is read at each
 * call, so that it may name what a `before` hook starts later.
 */
export function solTransfers(parts: () => { client: Broker; solana: SolanaRuntime }) {
  return {
    /** The confirmed balance of `address`, from the chain itself. */
    lamports: async (address: string) => BigInt(await new Connection(parts().solana.url, 'confirmed').getBalance(new PublicKey(address))),
    /** A new user's SOL wallet holding 2 SOL, and a fresh recipient. */
    async funded() {
      const { client, solana } = parts();
      const userId = `u-${randomUUID()}`;
      const w = await client.request('wallet.management.create', { userId, chain: 'SOL' });
      solana.airdrop(w.address, 2_000_000_000n);
      return { userId, w, to: solanaAddress(localEd25519Signer().publicKey) };
    },
    transfer: (userId: string, walletId: string, recipient: string, amount: string, idempotencyKey?: string) =>
      parts().client.request(
        'wallet.transaction.transferSol',
        { userId, walletId, recipient, amount, ...(idempotencyKey ? { idempotencyKey } : {}) },
        { timeoutMs: 30_000 },
      ),
  };
}
