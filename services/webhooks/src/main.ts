import { ConfigError, createLogger, runService } from '@wallet-fleet/service-kit';
import { createWebhooksService } from './app.js';
import { loadWebhooksConfig } from './config.js';

let config;
try {
  config = loadWebhooksConfig();
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // Before any connection opens: name every bad variable and stop (EX_CONFIG).
  process.stderr.write(`webhooks: ${e.message}\n`);
  process.exit(78);
}
const logger = createLogger({ service: 'webhooks', level: config.LOG_LEVEL });
runService(createWebhooksService(config, logger), logger);
