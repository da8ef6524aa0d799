import { ConfigError, createLogger, runService } from '@wallet-fleet/service-kit';
import { createReconciliationService } from './app.js';
import { loadReconciliationConfig } from './config.js';

let config;
try {
  config = loadReconciliationConfig();
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // Before any connection opens: name every bad variable and stop (EX_CONFIG).
  process.stderr.write(`reconciliation: ${e.message}\n`);
  process.exit(78);
}
const logger = createLogger({ service: 'reconciliation', level: config.LOG_LEVEL });
runService(createReconciliationService(config, logger), logger);
