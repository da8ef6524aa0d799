import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import {
  adminConfigShape,
  baseConfigShape,
  CLOUD_KMS_ENDPOINT,
  ConfigError,
  envVar,
  isIdentifier,
  loadConfig,
  retryConfigShape,
  retryPolicyOf,
  serviceConfigShape,
} from '@wallet-fleet/service-kit';

describe('loadConfig', () => {
  it('should default every common variable to this machine when the environment is empty', () => {
    const config = loadConfig(baseConfigShape, {});
    assert.deepEqual(config, {
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/postgres',
      REDIS_URL: 'redis://127.0.0.1:6379',
      HTTP_PORT: 8080,
      LOG_LEVEL: 'info',
      MIGRATE: true,
      SHUTDOWN_TIMEOUT_MS: 10000,
      FLEET_DEV_MODE: false,
    });
  });

  it('should take per-service defaults for DATABASE_SCHEMA and HTTP_PORT and typed values from the environment', () => {
    const shape = { ...baseConfigShape, DATABASE_SCHEMA: envVar.identifier('wallet'), HTTP_PORT: envVar.port(8081) };
    assert.equal(loadConfig(shape, {}).DATABASE_SCHEMA, 'wallet');
    assert.equal(loadConfig(shape, {}).HTTP_PORT, 8081);
    const config = loadConfig(shape, {
      DATABASE_SCHEMA: 'wallet_b',
      HTTP_PORT: '0',
      MIGRATE: '0',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_MS: '2500',
      AMQP_URL: 'amqps://u:p@mq.example:5671/vh',
      DATABASE_URL: 'postgresql://db.example/wallets',
      REDIS_URL: 'rediss://cache.example:6380',
    });
    assert.equal(config.DATABASE_SCHEMA, 'wallet_b');
    assert.equal(config.HTTP_PORT, 0);
    assert.equal(config.MIGRATE, false);
    assert.equal(config.LOG_LEVEL, 'debug');
    assert.equal(config.SHUTDOWN_TIMEOUT_MS, 2500);
    assert.equal(config.AMQP_URL, 'amqps://u:p@mq.example:5671/vh');
  });

  it('should accept only true/false/1/0 as booleans', () => {
    assert.equal(loadConfig(baseConfigShape, { MIGRATE: 'true' }).MIGRATE, true);
    assert.equal(loadConfig(baseConfigShape, { MIGRATE: '1' }).MIGRATE, true);
    assert.equal(loadConfig(baseConfigShape, { MIGRATE: 'false' }).MIGRATE, false);
    for (const bad of ['yes', 'TRUE', 'on', '2']) {
      assert.throws(
        () => loadConfig(baseConfigShape, { MIGRATE: bad }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.deepEqual(
            e.problems.map((p) => p.variable),
            ['MIGRATE'],
          );
          return true;
        },
      );
    }
  });

  it('should list every bad variable by name at once, without quoting values', () => {
    const env = {
      AMQP_URL: 'http://guest:hunter2@127.0.0.1:5672',
      DATABASE_URL: 'mysql://db',
      REDIS_URL: 'not a url',
      HTTP_PORT: '70000',
      LOG_LEVEL: 'loud',
      MIGRATE: 'maybe',
      SHUTDOWN_TIMEOUT_MS: '-5',
      DATABASE_SCHEMA: 'Wallet-Schema',
      PATH: '/usr/bin',
      SOMETHING_ELSE: 'whatever',
    };
    assert.throws(
      () => loadConfig(baseConfigShape, env),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems.map((p) => p.variable).sort(), [
          'AMQP_URL',
          'DATABASE_SCHEMA',
          'DATABASE_URL',
          'HTTP_PORT',
          'LOG_LEVEL',
          'MIGRATE',
          'REDIS_URL',
          'SHUTDOWN_TIMEOUT_MS',
        ]);
        for (const v of ['AMQP_URL', 'HTTP_PORT', 'MIGRATE']) assert.match(e.message, new RegExp(`${v}: `));
        assert.doesNotMatch(e.message, /hunter2/);
        assert.match(e.problems.find((p) => p.variable === 'AMQP_URL')!.message, /amqp:\/\/ or amqps:\/\//);
        return true;
      },
    );
  });

  it('should reject ports outside 0-65535 and non-integers', () => {
    for (const bad of ['-1', '65536', '80.5', '8o8o']) {
      assert.throws(() => loadConfig(baseConfigShape, { HTTP_PORT: bad }), ConfigError, bad);
    }
    assert.equal(loadConfig(baseConfigShape, { HTTP_PORT: '65535' }).HTTP_PORT, 65535);
  });

  it('should treat an empty variable as unset so its default applies', () => {
    assert.equal(loadConfig(baseConfigShape, { HTTP_PORT: '', MIGRATE: ' ' }).HTTP_PORT, 8080);
    assert.equal(loadConfig(baseConfigShape, { MIGRATE: '' }).MIGRATE, true);
  });

  it("should report a required service variable that is missing as 'required'", () => {
    const shape = { ...baseConfigShape, KMS_KEY_RING: envVar.string() };
    assert.throws(
      () => loadConfig(shape, {}),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems, [{ variable: 'KMS_KEY_RING', message: 'required' }]);
        return true;
      },
    );
  });

  it("should give a service's shape its own port, schema and pool size, with the pool held to 1-200", () => {
    const shape = serviceConfigShape({ httpPort: 8089, schema: 'ledger', poolMax: 7 });
    const config = loadConfig(shape, {});
    assert.deepEqual([config.HTTP_PORT, config.DATABASE_SCHEMA, config.DATABASE_POOL_MAX, config.MIGRATE], [8089, 'ledger', 7, true]);
    assert.equal(loadConfig(shape, { DATABASE_POOL_MAX: '200' }).DATABASE_POOL_MAX, 200);
    assert.throws(
      () => loadConfig(shape, { DATABASE_POOL_MAX: '0', DATABASE_SCHEMA: 'Ledger' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems.map((p) => p.variable).sort(), ['DATABASE_POOL_MAX', 'DATABASE_SCHEMA']);
        assert.match(e.message, /DATABASE_POOL_MAX: expected an integer from 1 to 200/);
        return true;
      },
    );
  });
});

describe('envVar.list', () => {
  const shape = {
    SCHEMAS: envVar.list({ default: 'a,b', each: isIdentifier, message: 'comma-separated lower-case schema names' }),
    ROLES: envVar.list({ nonEmpty: 'at least one role', each: (r) => r === 'x' || r === 'y', message: 'comma-separated: x, y' }).optional(),
  };

  it('should trim items and drop empty ones, and take the default when unset', () => {
    assert.deepEqual(loadConfig(shape, {}), { SCHEMAS: ['a', 'b'] });
    assert.deepEqual(loadConfig(shape, { SCHEMAS: ' c , d ,', ROLES: 'y, x' }), { SCHEMAS: ['c', 'd'], ROLES: ['y', 'x'] });
  });

  it('should read an empty value as an empty list, not as unset, and refuse it only where a list must not be empty', () => {
    assert.deepEqual(loadConfig(shape, { SCHEMAS: '' }).SCHEMAS, []);
    assert.throws(
      () => loadConfig(shape, { ROLES: ' , ' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems, [{ variable: 'ROLES', message: 'at least one role' }]);
        return true;
      },
    );
  });

  it('should name the variable when an item is malformed', () => {
    assert.throws(
      () => loadConfig(shape, { SCHEMAS: 'a,Bad-Name', ROLES: 'x,z' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems, [
          { variable: 'SCHEMAS', message: 'comma-separated lower-case schema names' },
          { variable: 'ROLES', message: 'comma-separated: x, y' },
        ]);
        return true;
      },
    );
  });
});

describe('retryConfigShape', () => {
  const shape = retryConfigShape('JOBS', { maxAttempts: 5, maxAttemptsLimit: 25, initialDelayMs: 60_000, maxDelayMs: 1_800_000 });

  it('should read <prefix>_RETRY_* with their defaults back as a retry policy', () => {
    assert.deepEqual(retryPolicyOf(loadConfig(shape, {}), 'JOBS'), { maxAttempts: 5, initialDelayMs: 60_000, maxDelayMs: 1_800_000 });
    const config = loadConfig(shape, { JOBS_RETRY_MAX_ATTEMPTS: '3', JOBS_RETRY_INITIAL_DELAY_MS: '50', JOBS_RETRY_MAX_DELAY_MS: '400' });
    assert.deepEqual(retryPolicyOf(config, 'JOBS'), { maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 400 });
  });

  it('should hold attempts to the given limit and delays to 1 ms-1 h (first) and 1 ms-1 day (cap)', () => {
    assert.throws(
      () => loadConfig(shape, { JOBS_RETRY_MAX_ATTEMPTS: '26', JOBS_RETRY_INITIAL_DELAY_MS: '3600001', JOBS_RETRY_MAX_DELAY_MS: '0' }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems, [
          { variable: 'JOBS_RETRY_MAX_ATTEMPTS', message: 'expected an integer from 1 to 25' },
          { variable: 'JOBS_RETRY_INITIAL_DELAY_MS', message: 'expected an integer from 1 to 3600000' },
          { variable: 'JOBS_RETRY_MAX_DELAY_MS', message: 'expected an integer from 1 to 86400000' },
        ]);
        return true;
      },
    );
  });
});

describe('development mode', () => {
  const shape = {
    ...baseConfigShape,
    KMS_ENDPOINT: envVar.kmsEndpoint(),
    SOLANA_RPC_URL: envVar.chainUrl('http://127.0.0.1:8899'),
    TOKEN: envVar.developmentOnly(envVar.string('none'), { what: 'a development token', is: (v) => v.startsWith('dev-') }),
  };
  const production = { KMS_ENDPOINT: CLOUD_KMS_ENDPOINT, SOLANA_RPC_URL: 'https://rpc.example' };
  const problems = (env: NodeJS.ProcessEnv) => {
    try {
      loadConfig(shape, env);
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      return Object.fromEntries(e.problems.map((p) => [p.variable, p.message]));
    }
    return {};
  };

  it('should refuse an empty KMS_ENDPOINT instead of taking the emulator, and say what it expects', () => {
    const p = problems({ ...production, KMS_ENDPOINT: '' });
    assert.deepEqual(Object.keys(p), ['KMS_ENDPOINT']);
    assert.match(p.KMS_ENDPOINT!, /^required: cloudkms\.googleapis\.com \(Google Cloud KMS\) or host:port of the KMS emulator$/);
    assert.match(problems({ ...production, KMS_ENDPOINT: 'kms.example' }).KMS_ENDPOINT!, /expected cloudkms\.googleapis\.com/);
  });

  it('should take Google Cloud KMS, https chains and other tokens without development mode, in production too', () => {
    for (const NODE_ENV of [undefined, 'production']) {
      const c = loadConfig(shape, { ...production, KMS_ENDPOINT: `${CLOUD_KMS_ENDPOINT}:443`, TOKEN: 'prod-1', NODE_ENV });
      assert.equal(c.KMS_ENDPOINT, CLOUD_KMS_ENDPOINT);
      assert.equal(c.FLEET_DEV_MODE, false);
    }
  });

  it('should refuse the emulator, a plain-http chain and a development value unless FLEET_DEV_MODE=true, naming each', () => {
    const env = { KMS_ENDPOINT: '127.0.0.1:9011', SOLANA_RPC_URL: 'http://solana:8899', TOKEN: 'dev-1' };
    const p = problems(env);
    assert.deepEqual(Object.keys(p).sort(), ['KMS_ENDPOINT', 'SOLANA_RPC_URL', 'TOKEN']);
    assert.match(p.KMS_ENDPOINT!, /the KMS emulator .* needs development mode \(FLEET_DEV_MODE=true\)/);
    assert.match(p.SOLANA_RPC_URL!, /plain http:\/\/ .* needs development mode/);
    assert.equal(p.TOKEN, 'a development token needs development mode (FLEET_DEV_MODE=true)');
    assert.ok(problems({ KMS_ENDPOINT: CLOUD_KMS_ENDPOINT }).SOLANA_RPC_URL, 'the loopback default is a development chain too');
    const c = loadConfig(shape, { ...env, FLEET_DEV_MODE: 'true' });
    assert.deepEqual([c.KMS_ENDPOINT, c.SOLANA_RPC_URL, c.FLEET_DEV_MODE], ['127.0.0.1:9011', 'http://solana:8899', true]);
  });

  it('should refuse development mode and every development value with NODE_ENV=production, saying why', () => {
    const p = problems({
      KMS_ENDPOINT: 'kms-emulator:9011',
      SOLANA_RPC_URL: 'http://127.0.0.1:8899',
      TOKEN: 'dev-1',
      FLEET_DEV_MODE: 'true',
      NODE_ENV: 'production',
    });
    assert.deepEqual(Object.keys(p).sort(), ['FLEET_DEV_MODE', 'KMS_ENDPOINT', 'SOLANA_RPC_URL', 'TOKEN']);
    assert.equal(p.FLEET_DEV_MODE, 'development mode is refused with NODE_ENV=production');
    assert.equal(p.TOKEN, 'a development token is for development only: refused with NODE_ENV=production');
    assert.deepEqual(Object.keys(problems({ ...production, FLEET_DEV_MODE: 'true', NODE_ENV: 'production' })), ['FLEET_DEV_MODE']);
  });
});

describe('adminConfigShape', () => {
  const shape = { ...baseConfigShape, ...adminConfigShape({ port: 9085 }) };

  it('should bind the admin listener to loopback by default, without a token', () => {
    const c = loadConfig(shape, {});
    assert.deepEqual([c.ADMIN_HTTP_HOST, c.ADMIN_HTTP_PORT, c.ADMIN_TOKEN], ['127.0.0.1', 9085, undefined]);
    assert.equal(loadConfig(shape, { ADMIN_HTTP_HOST: '::1' }).ADMIN_HTTP_HOST, '::1');
  });

  it('should require a token of 32 characters or more when the admin listener is bound elsewhere than loopback', () => {
    assert.throws(
      () => loadConfig(shape, { ADMIN_HTTP_HOST: '0.0.0.0' }),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message === 'invalid configuration: ADMIN_TOKEN: required when ADMIN_HTTP_HOST is not loopback (the admin endpoints change state)',
    );
    assert.throws(
      () => loadConfig(shape, { ADMIN_HTTP_HOST: '0.0.0.0', ADMIN_TOKEN: 'short' }),
      (e: unknown) => e instanceof ConfigError && e.message === 'invalid configuration: ADMIN_TOKEN: at least 32 characters',
    );
    assert.equal(loadConfig(shape, { ADMIN_HTTP_HOST: '0.0.0.0', ADMIN_TOKEN: 'x'.repeat(32) }).ADMIN_TOKEN, 'x'.repeat(32));
  });
});
