import { createLogger, type Logger } from '@wallet-fleet/service-kit';
import { applyBrokerDefinitions, backingServices, createVhost, rabbitAdmin, rawAmqp, type TestVhost, vhostPerTest, waitFor } from '@wallet-fleet/testing';
import type { GetMessage } from 'amqplib';
import { Registry } from 'prom-client';
import { roles } from '@wallet-fleet/contracts';
import { createBroker, topologyDefinitions, type Broker, type BrokerAccess, type BrokerOptions, type Topology } from '@wallet-fleet/messaging';

/** Logs stay quiet unless LOG_LEVEL is set (e.g. LOG_LEVEL=debug pnpm exec mocha …). */
export const logger: Logger = createLogger({ service: 'messaging-test', level: process.env.LOG_LEVEL ?? 'silent' });

/**
 * The tests' own broker user (the vhost's administrator) holds every role: these suites exercise
 * the runtime with topologies of their own, which the fleet's definitions do not know; who may
 * send what is tested in authorize.test.ts with per-role users.
 */
const everyRole = (vhost: TestVhost): BrokerAccess => ({ rolesOf: (u) => (u === vhost.user ? roles : []) });

/** A broker into `vhost`, stopped by `cleanup()`. Fast reconnects for tests. */
export function broker(vhost: TestVhost, topology: Topology, extra: Partial<BrokerOptions> = {}): Broker {
  const b = createBroker({
    url: vhost.url,
    service: 'test',
    topology,
    logger,
    access: everyRole(vhost),
    registry: new Registry(),
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    ...extra,
  });
  started.push(b);
  return b;
}

const started: Broker[] = [];

/**
 * Imports a topology's queues, bindings and policies (delivery limits, at-least-once dead-lettering,
 * the alternate exchange of wallet.events) into the vhost, as the fleet's broker definitions do.
 */
export async function applyTopology(vhost: TestVhost, ...topologies: Topology[]): Promise<void> {
  await applyBrokerDefinitions(vhost.vhost, { users: [], permissions: [], topic_permissions: [], ...topologyDefinitions(topologies, vhost.vhost) });
}
const raw = rawAmqp();

/** A plain amqplib channel for doing what our library would refuse to do (malformed messages). */
export const rawChannel = raw.channel;

/** Ready messages in a queue, straight from the broker (the management API lags by seconds). */
export const depth = raw.depth;

/**
 * Closes every connection into the vhost from the broker side. The management API lists a new
 * connection only after its next statistics emission (up to 5 s here), so this waits until at
 * least `expected` connections were seen and closed.
 */
export async function killConnections(vhost: TestVhost, expected: number): Promise<void> {
  let closed = 0;
  await waitFor(async () => (closed += await rabbitAdmin.closeConnections(vhost.vhost)) >= expected, {
    timeoutMs: 15_000,
    intervalMs: 100,
    what: `${expected} connections to become visible and be closed (closed so far: ${closed})`,
  });
}

/** Waits until the management API lists `n` connections into the vhost (it lags by up to 5 s). */
export async function waitForConnections(vhost: TestVhost, n: number): Promise<void> {
  const { managementUrl } = await backingServices();
  const u = new URL(managementUrl);
  const auth = Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
  const visible = async () => {
    const res = await fetch(`${u.protocol}//${u.host}/api/vhosts/${encodeURIComponent(vhost.vhost)}/connections`, {
      headers: { authorization: `Basic ${auth}` },
    });
    return ((await res.json()) as unknown[]).length;
  };
  await waitFor(async () => (await visible()) >= n, { timeoutMs: 15_000, intervalMs: 100, what: `${n} connections visible in the management API` });
}

/** Takes every message off a queue (acking them), with headers as amqplib decodes them. */
export async function takeAll(vhost: TestVhost, queue: string): Promise<GetMessage[]> {
  const ch = await rawChannel(vhost);
  const out: GetMessage[] = [];
  for (;;) {
    const m = await ch.get(queue, { noAck: true });
    if (!m) break;
    out.push(m);
  }
  await ch.close().catch(() => undefined);
  return out;
}

export async function cleanup(): Promise<void> {
  await Promise.all(started.splice(0).map((b) => b.stop({ timeoutMs: 1000 }).catch(() => undefined)));
  await raw.close();
}

/**
 * A fresh vhost whose drop() retries once: the management API sometimes closes a kept-alive
 * HTTP connection just as the next request goes out ("other side closed").
 */
export async function freshVhost(): Promise<TestVhost> {
  const v = await createVhost('messaging');
  // A pause before the one retry, not a wait for a condition: there is nothing to poll for.
  return {
    ...v,
    drop: () =>
      v.drop().catch(async () => {
        await sleep(200);
        await v.drop();
      }),
  };
}

/** A valid `deposit.received` payload, the `n`th (distinct ids and hashes). */
export const deposit = (n: number) => ({
  depositId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
  chain: 'SOL' as const,
  txHash: `tx${n}`,
  token: 'native',
  amount: String(n),
  toAddress: 'addr',
});

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Header value as text (the management API and amqplib differ in how they hand them back). */
export function text(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

/** Each test of the enclosing `describe` in a fresh vhost of its own, handed to `use` (see vhostPerTest). */
export function eachTestInFreshVhost(use: (vhost: TestVhost) => void): void {
  vhostPerTest(freshVhost, cleanup, use);
}
