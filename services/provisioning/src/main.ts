import { ConfigError, createLogger, runService } from '@wallet-fleet/service-kit';
import { createProvisioningService } from './app.js';
import { loadProvisioningConfig } from './config.js';

let config;
try {
  config = loadProvisioningConfig();
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // Before any connection opens: name every bad variable and stop (EX_CONFIG).
  process.stderr.write(`provisioning: ${e.message}\n`);
  process.exit(78);
}
const logger = createLogger({ service: 'provisioning', level: config.LOG_LEVEL });
runService(createProvisioningService(config, logger), logger);
