export { runWithContext, currentContext, childTraceparent, type WorkContext } from './context.js';
export { createLogger, safeUrl, scrubCredentials, type Logger } from './logger.js';
export {
  adminConfigShape,
  baseConfigShape,
  CLOUD_KMS_ENDPOINT,
  serviceConfigShape,
  retryConfigShape,
  retryPolicyOf,
  envVar,
  isIdentifier,
  loadConfig,
  ConfigError,
  type ConfigProblem,
  type ServiceConfig,
} from './config.js';
export { createAdminServer, createHttpServer, type Check } from './http.js';
export { createService, runService, runServiceMain, type Component, type Service, type ServiceState } from './lifecycle.js';
export { createServiceBase, type ServiceBase } from './service-base.js';
export { createPeriodic, type PeriodicOptions } from './periodic.js';
export { createPgPool, type PgPool } from './postgres.js';
export { migrate } from './migrate.js';
export { createRedis, type Redis, type RedisHandle } from './redis.js';
export { createRateLimiter, type RateLimiter, type RateLimitResult } from './rate-limit.js';
export { createBreaker, isBreakerOpen, type Breaker, type BreakerOptions, type BreakerState } from './breaker.js';
export { createMetrics, getOrCreateMetric, type Registry } from './metrics.js';
export { databaseError, withDatabaseErrors } from './db-errors.js';
export { afterCommit, inTransaction, type TransactionOptions } from './transaction.js';
