import { runServiceMain } from '@wallet-fleet/service-kit';
import { createAuditService } from './app.js';
import { loadAuditConfig } from './config.js';

runServiceMain({ name: 'audit', loadConfig: loadAuditConfig, create: createAuditService });
