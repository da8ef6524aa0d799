// The Kubernetes manifests as a cluster would get them (`kubectl kustomize`, the same code as
// `kubectl apply -k`), and the fleet started from them: each Deployment's own command and environment,
// with the cluster's Secrets and the development runtimes swapped for this machine's.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import { backingServices, createFleetVhost, createSchemaName, type TestSchema, type TestVhost } from '@wallet-fleet/testing';
import { type ServiceProcess, startService } from './service-process.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const requireFromMocha = createRequire(createRequire(import.meta.url).resolve('mocha/package.json'));
/** js-yaml comes with mocha: no dependency of our own just to read YAML in a test. */
export const yaml = requireFromMocha('js-yaml') as { load(s: string): unknown; loadAll(s: string): unknown[] };

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: any }; [k: string]: any };

/** The product's services, their HTTP ports and (for consumers) the queue KEDA scales them on. */
export const FLEET = {
  audit: { port: 8081, queue: 'audit.events' },
  wallet: { port: 8082, queue: 'wallet.requests' },
  provisioning: { port: 8083, queue: 'provisioning.chains' },
  webhooks: { port: 8084, queue: 'webhooks.deposits' },
  reconciliation: { port: 8085, queue: null },
} as const;
export type FleetService = keyof typeof FLEET;
export const fleetNames = Object.keys(FLEET) as FleetService[];

/**
 * `kubectl kustomize infra/k8s/overlays/<overlay>`: kubectl has kustomize built in (Debian's
 * `kubectl` package on this kind of machine; kustomize v5).
 * @throws Error naming the missing tool when kubectl is not installed (never a silent skip).
 */
export function render(overlay: 'development' | 'production'): K8sObject[] {
  let out: string;
  try {
    out = execFileSync('kubectl', ['kustomize', join(repoRoot, 'infra/k8s/overlays', overlay)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e: any) {
    if (e.code === 'ENOENT') throw new Error('kubectl is not installed: it renders infra/k8s (apt-get install kubectl, or any kubectl >= 1.27 on PATH)');
    throw new Error(`kubectl kustomize ${overlay} failed: ${e.stderr ?? e.message}`);
  }
  return (yaml.loadAll(out) as K8sObject[]).filter(Boolean);
}

export const deploymentOf = (objects: K8sObject[], name: string) => {
  const d = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name);
  if (!d) throw new Error(`no Deployment ${name}`);
  return d;
};

/**
 * What the cluster's Secrets hold, in a form each service's config accepts (the values are examples):
 * each service's broker URL, as its own user, in its own Secret.
 */
const EXAMPLE_SECRETS: Record<string, Record<string, string>> = {
  'wallet-fleet-backing': { REDIS_URL: 'redis://redis:6379' },
  ...Object.fromEntries(fleetNames.map((s) => [`wallet-fleet-amqp-${s}`, { AMQP_URL: `amqp://${s}:example@rabbitmq:5672/` }])),
  ...Object.fromEntries(
    fleetNames.map((s) => [
      `wallet-fleet-db-${s}`,
      { DATABASE_URL: `postgres://${s}_runtime:example@postgres:5432/fleet`, DATABASE_MIGRATION_URL: `postgres://${s}_migration:example@postgres:5432/fleet` },
    ]),
  ),
  'wallet-fleet-chains': { SOLANA_RPC_URL: 'https://solana.example', EVM_RPC_URL: 'https://evm.example', APTOS_NODE_URL: 'https://aptos.example/v1' },
  'wallet-fleet-webhooks': { WEBHOOK_SECRETS: `whsec_${Buffer.alloc(24, 7).toString('base64')}` },
};

/**
 * The environment a container of `deployment` gets, Secret references resolved from `secrets`.
 * @throws Error for a reference to a Secret or key that `secrets` lacks, or a source other than
 * value/secretKeyRef (the manifests use no other).
 */
export function containerEnv(deployment: K8sObject, secrets = EXAMPLE_SECRETS): Record<string, string> {
  const container = deployment.spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (typeof e.value === 'string') env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef) {
      const { name, key } = e.valueFrom.secretKeyRef;
      const v = secrets[name]?.[key];
      if (v === undefined) throw new Error(`${deployment.metadata.name}: ${e.name} reads Secret ${name} key ${key}, which the documented Secrets do not have`);
      env[e.name] = v;
    } else throw new Error(`${deployment.metadata.name}: ${e.name} has an unexpected source ${JSON.stringify(e)}`);
  }
  if (container.envFrom?.length) throw new Error(`${deployment.metadata.name}: envFrom hides which variables a pod gets; name each one`);
  return env;
}

export interface ManifestFleet {
  services: Record<FleetService, ServiceProcess>;
  stop(): Promise<void>;
}

/**
 * Starts every service of the development overlay as its Deployment would run it: the container's
 * command and environment, with the backing URLs pointing at a fresh vhost holding the fleet's broker
 * definitions (each service's Secret holds the URL of its own broker user) and one fresh schema per
 * service, the KMS emulator in-process, chain RPCs pointing nowhere (nothing here calls them at start),
 * and any free HTTP port (the manifests' ports may be taken on a shared machine).
 */
export async function startFleetFromManifests(): Promise<ManifestFleet> {
  const objects = render('development');
  const { databaseUrl, redisUrl } = await backingServices();
  const vhost: TestVhost = await createFleetVhost('manifests');
  const schemas: TestSchema[] = [];
  const kmsDir = mkdtempSync(join(tmpdir(), 'kms-manifests-'));
  const kms = await startKmsEmulator({ port: 0, dataDir: kmsDir });
  const started: ServiceProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map((s) => s.stop()));
    await kms.stop();
    rmSync(kmsDir, { recursive: true, force: true });
    await vhost.drop();
    for (const s of schemas) await s.drop();
  };
  try {
    const local = {
      'wallet-fleet-backing': { REDIS_URL: redisUrl },
      ...Object.fromEntries(fleetNames.map((s) => [`wallet-fleet-amqp-${s}`, { AMQP_URL: vhost.as(s) }])),
      // Replaced per service by its test schema's roles below.
      ...Object.fromEntries(fleetNames.map((s) => [`wallet-fleet-db-${s}`, { DATABASE_URL: databaseUrl, DATABASE_MIGRATION_URL: databaseUrl }])),
      'wallet-fleet-chains': { SOLANA_RPC_URL: 'http://127.0.0.1:9/', EVM_RPC_URL: 'http://127.0.0.1:9/', APTOS_NODE_URL: 'http://127.0.0.1:9/v1' },
      'wallet-fleet-webhooks': EXAMPLE_SECRETS['wallet-fleet-webhooks']!,
    };
    const entries = await Promise.all(
      fleetNames.map(async (name) => {
        const deployment = deploymentOf(objects, name);
        const command = deployment.spec.template.spec.containers[0].command;
        if (JSON.stringify(command) !== JSON.stringify(['node', `services/${name}/dist/main.js`])) throw new Error(`${name}: unexpected command ${command}`);
        const schema = await createSchemaName(`k8s_${name}`);
        schemas.push(schema);
        const env: Record<string, string> = { ...containerEnv(deployment, local), ...schema.env, LOG_LEVEL: 'warn' };
        delete env.HTTP_PORT;
        // The admin listener's default port may be taken on a shared machine, like the HTTP port.
        if (name === 'reconciliation') env.ADMIN_HTTP_PORT = '0';
        if (env.KMS_ENDPOINT) env.KMS_ENDPOINT = kms.endpoint;
        const service = await startService(name, env, { readyTimeoutMs: 30_000 });
        started.push(service);
        return [name, service] as const;
      }),
    );
    return { services: Object.fromEntries(entries) as Record<FleetService, ServiceProcess>, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
