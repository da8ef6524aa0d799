import { ConfigError, createLogger, runService } from '@wallet-fleet/service-kit';
import { createAuditService } from './app.js';
import { loadAuditConfig } from './config.js';

let config;
try {
  config = loadAuditConfig();
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // Before any connection opens: name every bad variable and stop (EX_CONFIG).
  process.stderr.write(`audit: ${e.message}\n`);
  process.exit(78);
}
const logger = createLogger({ service: 'audit', level: config.LOG_LEVEL });
runService(createAuditService(config, logger), logger);
