import { runServiceMain } from '@wallet-fleet/service-kit';
import { createReconciliationService } from './app.js';
import { loadReconciliationConfig } from './config.js';

runServiceMain({ name: 'reconciliation', loadConfig: loadReconciliationConfig, create: createReconciliationService });
