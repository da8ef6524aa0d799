// Writes infra/rabbitmq/definitions.json: the fleet's RabbitMQ users, vhost permissions and topic
// permissions, computed from the catalogue (packages/contracts) and from each service's topology.
// Run with `pnpm broker-definitions` (after `pnpm build`); a test fails when the file is stale.
// Import: `rabbitmqctl import_definitions infra/rabbitmq/definitions.json`, then set each user's
// password from the environment or the deployment's secrets (the file holds none).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FleetService } from '@wallet-fleet/contracts';
import { brokerDefinitions, type BrokerDefinitions, type Topology } from '@wallet-fleet/messaging';
import { loadAuditConfig } from '../services/audit/src/config.js';
import { auditTopology } from '../services/audit/src/topology.js';
import { loadProvisioningConfig } from '../services/provisioning/src/config.js';
import { provisioningTopology } from '../services/provisioning/src/topology.js';
import { reconciliationTopology } from '../services/reconciliation/src/topology.js';
import { walletTopology } from '../services/wallet/src/topology.js';
import { webhooksTopology } from '../services/webhooks/src/topology.js';

export const definitionsFile = fileURLToPath(new URL('../infra/rabbitmq/definitions.json', import.meta.url));

/**
 * Every service's topology as it declares it with its default configuration. Queue names and
 * bindings do not depend on configuration (only retry counts and prefetch do, which the
 * permissions do not mention).
 */
export function fleetTopologies(): Record<FleetService, Topology> {
  return {
    // The KMS endpoint is required but does not shape the topology.
    audit: auditTopology(loadAuditConfig({ KMS_ENDPOINT: 'cloudkms.googleapis.com' })),
    wallet: walletTopology(),
    provisioning: provisioningTopology(loadProvisioningConfig({})),
    webhooks: webhooksTopology({ maxAttempts: 2, initialDelayMs: 1000, maxDelayMs: 1000 }),
    reconciliation: reconciliationTopology(),
  };
}

export function fleetDefinitions(vhost = '/'): BrokerDefinitions {
  return brokerDefinitions(fleetTopologies(), vhost);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(definitionsFile, `${JSON.stringify(fleetDefinitions(), null, 2)}\n`);
  console.log(`wrote ${definitionsFile}`);
}
