// infra/k8s as a cluster gets it: both overlays rendered by kubectl's kustomize, every object checked
// against its API schema (kubernetes-models and its KEDA / Prometheus-operator packages), each
// Deployment checked against its service's own config schema, and the development overlay's
// Deployments run as their pods would (command, environment) to see that the probes answer.
import assert from 'node:assert/strict';
import { ScaledObject, TriggerAuthentication } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { CLOUD_KMS_ENDPOINT, loadConfig } from '@wallet-fleet/service-kit';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service, ServiceAccount } from 'kubernetes-models/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { configShape as auditShape, loadAuditConfig } from '../../services/audit/src/config.js';
import { configShape as provisioningShape, loadProvisioningConfig } from '../../services/provisioning/src/config.js';
import { configShape as reconciliationShape, loadReconciliationConfig } from '../../services/reconciliation/src/config.js';
import { configShape as walletShape, loadWalletConfig } from '../../services/wallet/src/config.js';
import { configShape as webhooksShape, loadWebhooksConfig } from '../../services/webhooks/src/config.js';
import {
  containerEnv,
  deploymentOf,
  FLEET,
  type FleetService,
  fleetNames,
  type K8sObject,
  type ManifestFleet,
  render,
  startFleetFromManifests,
} from './support/manifests.js';

/** Each service's own config loader and the variables it knows: what its process does at start. */
const CONFIG: Record<FleetService, { load(env: NodeJS.ProcessEnv): { HTTP_PORT: number }; shape: Record<string, any> }> = {
  audit: { load: loadAuditConfig, shape: auditShape },
  wallet: { load: loadWalletConfig, shape: walletShape },
  provisioning: { load: loadProvisioningConfig, shape: provisioningShape },
  webhooks: { load: loadWebhooksConfig, shape: webhooksShape },
  reconciliation: { load: loadReconciliationConfig, shape: reconciliationShape },
};

/**
 * Variables whose default points at this machine (127.0.0.1): inside a pod that is the pod itself.
 * But the admin listener's host: the pod itself is what it is meant for (`kubectl port-forward`).
 */
const loopbackDefaults = (name: FleetService) =>
  Object.entries(loadConfig(CONFIG[name].shape, { FLEET_DEV_MODE: 'true', KMS_ENDPOINT: CLOUD_KMS_ENDPOINT }) as Record<string, unknown>)
    .filter(([k, v]) => k !== 'ADMIN_HTTP_HOST' && typeof v === 'string' && /127\.0\.0\.1|localhost/.test(v))
    .map(([k]) => k);

/** What the container image sets (Dockerfile `ENV`), under the Deployment's own variables. */
const IMAGE_ENV = { NODE_ENV: 'production' };

/** The API schema of every kind the manifests may hold; any other kind fails the test. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
  'keda.sh/v1alpha1/TriggerAuthentication': TriggerAuthentication,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

/** Ports each service may open: DNS, RabbitMQ, PostgreSQL, Redis, and HTTPS for KMS and chain RPCs. */
const EGRESS: Record<FleetService, number[]> = {
  audit: [53, 5672, 5432, 6379, 443],
  wallet: [53, 5672, 5432, 6379, 443],
  provisioning: [53, 5672, 5432, 6379],
  webhooks: [53, 5672, 5432, 6379, 443],
  reconciliation: [53, 5672, 5432, 6379],
};

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const named = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);

for (const overlay of ['development', 'production'] as const) {
  describe(`Kubernetes manifests: ${overlay} overlay`, () => {
    let objects: K8sObject[];
    before(() => {
      objects = render(overlay);
    });

    it('should render only objects that pass their Kubernetes API schema, all in the overlay namespace', () => {
      const namespace = overlay === 'production' ? 'wallet-fleet' : 'wallet-fleet-dev';
      for (const o of objects) {
        const id = `${o.kind} ${o.metadata.name}`;
        assert.equal(o.metadata.namespace, namespace, `${id} namespace`);
        if (o.apiVersion === 'rabbitmq.com/v1beta1' && o.kind === 'RabbitmqCluster') {
          // No published model of the operator's CRD: its few fields we use, checked by shape.
          assert.ok(Number.isInteger(o.spec.replicas) && o.spec.replicas >= 1, `${id} replicas`);
          assert.match(o.spec.rabbitmq.additionalConfig, /^load_definitions = \//m, `${id} loads the definitions`);
          assert.equal(o.spec.override.statefulSet.spec.template.spec.volumes[0].secret.secretName, 'rabbitmq-definitions');
          continue;
        }
        const Model = MODELS[`${o.apiVersion}/${o.kind}`];
        assert.ok(Model, `${id}: no schema for ${o.apiVersion} ${o.kind}`);
        assert.doesNotThrow(
          () => new Model(o).validate(),
          (e: Error) => `${id}: ${e.message}`,
        );
      }
    });

    it('should give every service a Deployment, Service, ServiceAccount, PodDisruptionBudget and NetworkPolicy, and every queue consumer a ScaledObject', () => {
      for (const name of fleetNames) {
        for (const kind of ['Deployment', 'Service', 'ServiceAccount', 'PodDisruptionBudget', 'NetworkPolicy']) {
          assert.ok(named(objects, kind, name), `${kind} ${name}`);
        }
        const scaled = named(objects, 'ScaledObject', name);
        const queue = FLEET[name].queue;
        if (queue === null) {
          assert.equal(scaled, undefined, `${name} consumes no queue and stays single-active: no autoscaling`);
          continue;
        }
        assert.ok(scaled, `ScaledObject ${name}`);
        assert.equal(scaled.spec.scaleTargetRef.name, name);
        assert.deepEqual(
          scaled.spec.triggers.map((t: any) => [t.type, t.metadata.queueName, t.metadata.mode]),
          [['rabbitmq', queue, 'QueueLength']],
        );
        const auth = named(objects, 'TriggerAuthentication', scaled.spec.triggers[0].authenticationRef.name);
        assert.ok(auth, 'its TriggerAuthentication exists');
        const amqpRef = deploymentOf(objects, name).spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === 'AMQP_URL').valueFrom
          .secretKeyRef;
        assert.deepEqual(
          auth.spec.secretTargetRef,
          [{ parameter: 'host', ...amqpRef }],
          `${name}: KEDA reads ${queue} as the service's own broker user (the only one allowed to)`,
        );
        assert.ok(scaled.spec.minReplicaCount >= 1 && scaled.spec.maxReplicaCount >= scaled.spec.minReplicaCount);
        assert.equal(deploymentOf(objects, name).spec.replicas, undefined, `${name}: KEDA owns the replica count`);
      }
      for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget'])
        assert.equal(byKind(objects, kind).length, fleetNames.length, `one ${kind} per service`);
    });

    it('should set every variable each service requires (and each whose default is loopback), only variables it knows, and its port on the container and probes', () => {
      for (const name of fleetNames) {
        const deployment = deploymentOf(objects, name);
        const container = deployment.spec.template.spec.containers[0];
        assert.deepEqual(container.command, ['node', `services/${name}/dist/main.js`]);
        const env = containerEnv(deployment);
        for (const variable of Object.keys(env)) assert.ok(variable in CONFIG[name].shape, `${name}: ${variable} is no variable of its config`);
        for (const variable of loopbackDefaults(name)) assert.ok(variable in env, `${name}: ${variable} must be set (its default is this machine)`);
        // The service's own loader, as at start (with the image's environment beneath): throws naming
        // every missing or malformed variable, and every development-only value outside development mode.
        const config = CONFIG[name].load({ ...IMAGE_ENV, ...env }) as { HTTP_PORT: number; FLEET_DEV_MODE: boolean };
        assert.equal(config.FLEET_DEV_MODE, overlay === 'development', `${name}: development mode only in the development overlay`);
        assert.equal(env.DATABASE_SCHEMA, name, `${name} schema`);
        // Consumers check each message's user_id against the catalogue's roles: a service connected as
        // another service's user would be refused (FORBIDDEN, forbidden_producer) or refused its queues.
        assert.equal(decodeURIComponent(new URL(env.AMQP_URL!).username), name, `${name}: AMQP_URL names its own broker user`);
        assert.equal(config.HTTP_PORT, FLEET[name].port, `${name} HTTP_PORT`);
        assert.deepEqual(container.ports, [{ name: 'http', containerPort: FLEET[name].port }]);
        assert.equal(deployment.spec.template.metadata.annotations['prometheus.io/port'], String(FLEET[name].port));
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) assert.equal(container[probe].httpGet.port, 'http', `${name} ${probe} port`);
        assert.deepEqual(
          named(objects, 'Service', name)!.spec.ports.map((p: { targetPort: string }) => p.targetPort),
          ['http'],
          `${name}: the Service exposes the HTTP port alone (never an admin listener)`,
        );
        assert.deepEqual(deployment.spec.selector.matchLabels, { 'app.kubernetes.io/name': name });
        assert.equal(deployment.spec.template.spec.serviceAccountName, name);
      }
      const walletEnv = containerEnv(deploymentOf(objects, 'wallet'));
      if (overlay === 'development') {
        assert.equal(walletEnv.KMS_ENDPOINT, 'kms-emulator:9011', 'development signs with the emulator');
        const { FLEET_DEV_MODE: _, NODE_ENV: __, ...withoutDevMode } = walletEnv;
        assert.throws(
          () => loadWalletConfig({ ...IMAGE_ENV, ...withoutDevMode }),
          /KMS_ENDPOINT: the KMS emulator .* is for development only: refused with NODE_ENV=production/,
          "the emulator is refused under the image's NODE_ENV without the overlay's development mode",
        );
      } else assert.equal(walletEnv.KMS_ENDPOINT, CLOUD_KMS_ENDPOINT, 'production signs with Cloud KMS');
    });

    it('should keep the admin listener on the pod itself: loopback, no port on the container, the Service or the NetworkPolicy', () => {
      const d = deploymentOf(objects, 'reconciliation');
      const config = loadReconciliationConfig({ ...IMAGE_ENV, ...containerEnv(d) });
      assert.equal(config.ADMIN_HTTP_HOST, '127.0.0.1');
      const adminPorts = [config.ADMIN_HTTP_PORT, String(config.ADMIN_HTTP_PORT)];
      const container = d.spec.template.spec.containers[0];
      assert.ok(!container.ports.some((p: { containerPort: number }) => adminPorts.includes(p.containerPort)));
      const policy = named(objects, 'NetworkPolicy', 'reconciliation')!;
      const ingressPorts = policy.spec.ingress.flatMap((rule: any) => rule.ports.map((p: any) => p.port));
      assert.ok(!ingressPorts.some((p: unknown) => adminPorts.includes(p as never)), `ingress ports ${ingressPorts}`);
    });

    it('should run every container as non-root with a read-only root file system, no privilege escalation, and resource requests', () => {
      for (const d of byKind(objects, 'Deployment')) {
        const pod = d.spec.template.spec;
        assert.equal(pod.securityContext.runAsNonRoot, true, d.metadata.name);
        assert.equal(pod.automountServiceAccountToken, false);
        const c = pod.containers[0];
        assert.equal(c.securityContext.readOnlyRootFilesystem, true);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false);
        assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
        assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
        assert.ok(c.image.startsWith(overlay === 'production' ? 'registry.example/wallet-fleet:' : 'wallet-fleet:'), `image ${c.image} comes from the overlay`);
      }
    });

    it('should let each service reach only its own dependencies, and let nothing in but Prometheus (and the ingress to webhooks)', () => {
      const policies = byKind(objects, 'NetworkPolicy');
      const deny = policies.find((p) => p.metadata.name === 'default-deny')!;
      assert.deepEqual(deny.spec.policyTypes, ['Ingress', 'Egress']);
      assert.equal(deny.spec.ingress, undefined);
      assert.equal(deny.spec.egress, undefined);
      for (const name of fleetNames) {
        const own = named(objects, 'NetworkPolicy', name)!;
        const ports = own.spec.egress.flatMap((rule: any) => {
          assert.ok(rule.ports?.length, `${name}: an egress rule without ports opens everything`);
          return rule.ports.map((p: any) => p.port);
        });
        assert.deepEqual([...new Set(ports)].sort(), [...EGRESS[name]].sort(), `${name} egress ports`);
        const from = own.spec.ingress.flatMap((rule: any) => rule.from.map((f: any) => f.namespaceSelector.matchLabels['kubernetes.io/metadata.name']));
        assert.deepEqual(from, name === 'webhooks' ? ['monitoring', 'ingress-nginx'] : ['monitoring'], `${name} ingress`);
        assert.deepEqual(
          own.spec.ingress.flatMap((rule: any) => rule.ports.map((p: any) => p.port)),
          ['http'],
        );
      }
    });

    it('should keep reconciliation single-active: fixed replicas, no autoscaler, and the pass lock of its config', () => {
      const d = deploymentOf(objects, 'reconciliation');
      assert.equal(d.spec.replicas, overlay === 'production' ? 2 : 1);
      assert.equal(named(objects, 'ScaledObject', 'reconciliation'), undefined);
      // Several replicas are safe only because a pass runs under the advisory lock; its timeout is a config value.
      assert.ok(loadReconciliationConfig(containerEnv(d)).RECONCILE_LOCK_TIMEOUT_MS > 0);
    });
  });
}

describe('Kubernetes manifests: the development overlay run as its pods would', function () {
  this.timeout(120_000);
  let fleet: ManifestFleet;
  before(async () => {
    fleet = await startFleetFromManifests();
  });
  after(async () => fleet?.stop());

  it("should answer each Deployment's startup, liveness and readiness probe paths, and serve the scraped path", async () => {
    const objects = render('development');
    for (const name of fleetNames) {
      const deployment = deploymentOf(objects, name);
      const container = deployment.spec.template.spec.containers[0];
      const paths = [
        ...['startupProbe', 'livenessProbe', 'readinessProbe'].map((p) => container[p].httpGet.path as string),
        deployment.spec.template.metadata.annotations['prometheus.io/path'] as string,
      ];
      for (const path of paths) {
        const res = await fetch(fleet.services[name].url(path));
        assert.equal(res.status, 200, `${name} ${path}`);
      }
    }
  });
});
