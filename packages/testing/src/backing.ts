import { existsSync } from 'node:fs';
import { request } from 'node:http';

/** URLs of the real backing services the tests talk to. */
export interface BackingServices {
  amqpUrl: string;
  managementUrl: string;
  databaseUrl: string;
  redisUrl: string;
  /** Where they came from: the environment, containers started here, or this machine's services. */
  source: 'env' | 'testcontainers' | 'local';
}

const LOCAL: Omit<BackingServices, 'source'> = {
  amqpUrl: 'amqp://guest:guest@127.0.0.1:5672',
  managementUrl: 'http://guest:guest@127.0.0.1:15672',
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
  redisUrl: 'redis://127.0.0.1:6379',
};

let resolved: Promise<BackingServices> | undefined;

/**
 * The backing services, decided once per process: URLs from the environment (`AMQP_URL`,
 * `RABBITMQ_MANAGEMENT_URL`, `DATABASE_URL`, `REDIS_URL`) win; else, where a Docker engine answers,
 * containers started with testcontainers; else the local services of this machine.
 */
export function backingServices(): Promise<BackingServices> {
  resolved ??= resolve();
  return resolved;
}

async function resolve(): Promise<BackingServices> {
  const env = process.env;
  if (env.AMQP_URL || env.DATABASE_URL || env.REDIS_URL) {
    return {
      amqpUrl: env.AMQP_URL ?? LOCAL.amqpUrl,
      managementUrl: env.RABBITMQ_MANAGEMENT_URL ?? LOCAL.managementUrl,
      databaseUrl: env.DATABASE_URL ?? LOCAL.databaseUrl,
      redisUrl: env.REDIS_URL ?? LOCAL.redisUrl,
      source: 'env',
    };
  }
  if (env.TESTCONTAINERS !== 'off' && (await dockerEngineAnswers())) {
    return startContainers();
  }
  return { ...LOCAL, source: 'local' };
}

async function dockerEngineAnswers(): Promise<boolean> {
  const socket = process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST.slice('unix://'.length) : '/var/run/docker.sock';
  if (!process.env.DOCKER_HOST && !existsSync(socket)) return false;
  if (process.env.DOCKER_HOST && !process.env.DOCKER_HOST.startsWith('unix://')) return true;
  return new Promise((done) => {
    const req = request({ socketPath: socket, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => {
      req.destroy();
      done(false);
    });
    req.end();
  });
}

async function startContainers(): Promise<BackingServices> {
  const [{ RabbitMQContainer }, { PostgreSqlContainer }, { RedisContainer }] = await Promise.all([
    import('@testcontainers/rabbitmq'),
    import('@testcontainers/postgresql'),
    import('@testcontainers/redis'),
  ]);
  const [rabbit, pg, redis] = await Promise.all([
    new RabbitMQContainer('rabbitmq:3.13-management').start(),
    new PostgreSqlContainer('postgres:15').start(),
    new RedisContainer('redis:7').start(),
  ]);
  // Not stopped by us: testcontainers' reaper removes them when this process exits.
  return {
    amqpUrl: rabbit.getAmqpUrl(),
    managementUrl: `http://guest:guest@${rabbit.getHost()}:${rabbit.getMappedPort(15672)}`,
    databaseUrl: pg.getConnectionUri(),
    redisUrl: redis.getConnectionUrl(),
    source: 'testcontainers',
  };
}
