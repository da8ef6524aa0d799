import { fileURLToPath } from 'node:url';
import type express from 'express';
import type { z } from 'zod';
import type { adminConfigShape, ServiceConfig } from './config.js';
import { type Check, createAdminServer, createHttpServer } from './http.js';
import { type Component, createService, type Service } from './lifecycle.js';
import type { Logger } from './logger.js';
import { createMetrics, type Registry } from './metrics.js';
import { migrationsComponent } from './migrate.js';
import { createPgPool, type PgPool } from './postgres.js';
import { createRedis, type RedisHandle } from './redis.js';

type AdminConfig = { [K in keyof ReturnType<typeof adminConfigShape>]: z.output<ReturnType<typeof adminConfigShape>[K]> };

/** What every service is built on; `assemble` turns it, with the service's own parts, into the service. */
export interface ServiceBase {
  readonly name: string;
  /** `DATABASE_SCHEMA`. */
  readonly schema: string;
  /** The service's metrics registry (`createMetrics(name)`), served on `/metrics`. */
  readonly registry: Registry;
  /** `DATABASE_POOL_MAX` connections to `DATABASE_URL`, `search_path` = `DATABASE_SCHEMA`. */
  readonly pg: PgPool;
  /**
   * `REDIS_URL`, every key prefixed `<name>:<schema>:` (replicas of one service share keys, tests
   * with their own schema do not). Created at the first call; the same handle afterwards. Not
   * started unless its component is passed to `assemble`.
   */
  redis(): RedisHandle;
  /**
   * The service, wired but not started. Its components, started in this order and stopped in
   * reverse: the HTTP server (`HTTP_PORT`: probes answer while the rest starts and say not-ready
   * while it drains), the migrations (`MIGRATE`, as `DATABASE_MIGRATION_URL`), the pool, then `components` in the order given,
   * so put consumers after what they use. `/ready` and `/health` run the pool's check, then
   * `checks`. Each component's stop is bounded by `stopTimeoutMs`, by default
   * `SHUTDOWN_TIMEOUT_MS` + 2 s (the broker drains within `SHUTDOWN_TIMEOUT_MS`).
   */
  assemble(parts: {
    components: Component[];
    checks: Check[];
    routes?: express.Router | undefined;
    /**
     * State-changing endpoints, served by a listener of their own (`createAdminServer`) on
     * `ADMIN_HTTP_HOST:ADMIN_HTTP_PORT` (`adminConfigShape`), started after the HTTP server.
     */
    adminRoutes?: express.Router | undefined;
    stopTimeoutMs?: number;
  }): Service & {
    port(): number;
    /** The admin listener's port; throws when the service has none or it is not listening. */
    adminPort(): number;
  };
}

/**
 * The parts every service starts from, made from its common configuration: the metrics registry,
 * the PostgreSQL pool, Redis on demand, and the migrations of `migrations` (the service's
 * `migrations/` folder, e.g. `new URL('../migrations', import.meta.url)`).
 *
 * @throws TypeError when `DATABASE_SCHEMA` is not a lower-case identifier (see `createPgPool`).
 */
export function createServiceBase(opts: {
  name: string;
  config: Pick<
    ServiceConfig,
    'DATABASE_URL' | 'DATABASE_MIGRATION_URL' | 'DATABASE_SCHEMA' | 'DATABASE_POOL_MAX' | 'REDIS_URL' | 'HTTP_PORT' | 'MIGRATE' | 'SHUTDOWN_TIMEOUT_MS'
  > &
    Partial<AdminConfig>;
  logger: Logger;
  migrations: URL;
}): ServiceBase {
  const { name, config, logger } = opts;
  const schema = config.DATABASE_SCHEMA;
  const registry = createMetrics(name);
  const pg = createPgPool({ url: config.DATABASE_URL, schema, max: config.DATABASE_POOL_MAX, applicationName: name, logger });
  let redis: RedisHandle | undefined;
  return {
    name,
    schema,
    registry,
    pg,
    redis() {
      redis ??= createRedis({ url: config.REDIS_URL, keyPrefix: `${name}:${schema}:`, logger, connectionName: name });
      return redis;
    },
    assemble(parts) {
      const migrations = migrationsComponent({
        enabled: config.MIGRATE,
        databaseUrl: config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL,
        runtimeUrl: config.DATABASE_URL,
        schema,
        dir: fileURLToPath(opts.migrations),
        logger,
      });
      const http = createHttpServer({
        port: config.HTTP_PORT,
        registry,
        logger,
        checks: [pg.check, ...parts.checks],
        ...(parts.routes ? { routes: parts.routes } : {}),
      });
      let admin: ReturnType<typeof createAdminServer> | undefined;
      if (parts.adminRoutes) {
        if (config.ADMIN_HTTP_PORT === undefined || config.ADMIN_HTTP_HOST === undefined) {
          throw new TypeError(`${name}: adminRoutes need ADMIN_HTTP_PORT and ADMIN_HTTP_HOST in the config (adminConfigShape)`);
        }
        admin = createAdminServer({ port: config.ADMIN_HTTP_PORT, host: config.ADMIN_HTTP_HOST, token: config.ADMIN_TOKEN, routes: parts.adminRoutes, logger });
      }
      const service = createService({
        name,
        logger,
        components: [http, ...(admin ? [admin] : []), migrations, pg.component, ...parts.components],
        stopTimeoutMs: parts.stopTimeoutMs ?? config.SHUTDOWN_TIMEOUT_MS + 2000,
      });
      return Object.assign(service, {
        port: () => http.port(),
        adminPort: () => {
          if (!admin) throw new Error(`${name} has no admin listener`);
          return admin.port();
        },
      });
    },
  };
}
