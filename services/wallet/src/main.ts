import { runServiceMain } from '@wallet-fleet/service-kit';
import { createWalletService } from './app.js';
import { loadWalletConfig } from './config.js';

runServiceMain({ name: 'wallet', loadConfig: loadWalletConfig, create: createWalletService });
