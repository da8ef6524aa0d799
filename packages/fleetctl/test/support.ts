import { fileURLToPath } from 'node:url';
import { brokerAccessFromEnv, createBroker, type Broker, type Topology } from '@wallet-fleet/messaging';
import { createLogger } from '@wallet-fleet/service-kit';
import { backingServices, createFleetVhost, type ProcessResult, rawAmqp, runNode, type TestVhost } from '@wallet-fleet/testing';

const bin = fileURLToPath(new URL('../bin/fleetctl.mjs', import.meta.url));

/** Runs `node bin/fleetctl.mjs …` as its own process, pointed at `vhost` as the `ops` user, as an operator would. */
export async function fleetctl(vhost: TestVhost, args: string[], env: Record<string, string> = {}): Promise<ProcessResult> {
  const { managementUrl } = await backingServices();
  return runNode([bin, ...args], {
    env: { ...process.env, AMQP_URL: vhost.as('ops'), RABBITMQ_MANAGEMENT_URL: managementUrl, FLEETCTL_TIMEOUT_MS: '5000', ...env },
  });
}

/** `fleetctl … --json`, parsed; fails the test with the CLI's stderr when it exits otherwise than `expectCode`. */
export async function fleetctlJson<T>(vhost: TestVhost, args: string[], expectCode = 0, env: Record<string, string> = {}): Promise<T> {
  const r = await fleetctl(vhost, [...args, '--json'], env);
  if (r.code !== expectCode) throw new Error(`fleetctl ${args.join(' ')} exited ${r.code}, expected ${expectCode}: ${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as T;
}

const logger = createLogger({ service: 'fleetctl-test', level: process.env.LOG_LEVEL ?? 'silent' });
const brokers: Broker[] = [];
const raw = rawAmqp();

/**
 * A broker of packages/messaging into `vhost`, stopped by cleanup(): consumers playing the services
 * with topologies of the tests' own (unknown to the fleet's definitions, so under the test's
 * administrative user, which holds the wallet role whose audit events it publishes). Requests are
 * checked as in the fleet: fleetctl's come from the `ops` user.
 */
export function broker(vhost: TestVhost, topology: Topology): Broker {
  const b = createBroker({
    url: vhost.url,
    service: 'fleetctl-test',
    topology,
    logger,
    access: { rolesOf: (u) => (u === vhost.user ? ['wallet'] : brokerAccessFromEnv({}).rolesOf(u)) },
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  brokers.push(b);
  return b;
}

/** A plain amqplib channel, for what our library would not do (a DLQ without its work queue). */
export const rawChannel = raw.channel;

/** Ready messages of a queue, straight from the broker. */
export const depth = raw.depth;

/** A vhost with the fleet's broker definitions: fleetctl meets the checks it meets in production. */
export async function freshVhost(): Promise<TestVhost> {
  return createFleetVhost('fleetctl');
}

export async function cleanup(): Promise<void> {
  await Promise.all(brokers.splice(0).map((b) => b.stop({ timeoutMs: 2000 }).catch(() => undefined)));
  await raw.close();
}
