import { runServiceMain } from '@wallet-fleet/service-kit';
import { createProvisioningService } from './app.js';
import { loadProvisioningConfig } from './config.js';

runServiceMain({ name: 'provisioning', loadConfig: loadProvisioningConfig, create: createProvisioningService });
