import { ConfigError, createLogger, runService } from '@wallet-fleet/service-kit';
import { createWalletService } from './app.js';
import { loadWalletConfig } from './config.js';

let config;
try {
  config = loadWalletConfig();
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  // Before any connection opens: name every bad variable and stop (EX_CONFIG).
  process.stderr.write(`wallet: ${e.message}\n`);
  process.exit(78);
}
const logger = createLogger({ service: 'wallet', level: config.LOG_LEVEL });
runService(createWalletService(config, logger), logger);
