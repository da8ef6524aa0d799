import { runServiceMain } from '@wallet-fleet/service-kit';
import { createWebhooksService } from './app.js';
import { loadWebhooksConfig } from './config.js';

runServiceMain({ name: 'webhooks', loadConfig: loadWebhooksConfig, create: createWebhooksService });
