import assert from 'node:assert/strict';
import { describe, it } from 'mocha';
import { baseConfigShape, ConfigError, envVar, loadConfig } from '@wallet-fleet/service-kit';

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
      assert.throws(() => loadConfig(baseConfigShape, { MIGRATE: bad }), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.deepEqual(e.problems.map((p) => p.variable), ['MIGRATE']);
        return true;
      });
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
    assert.throws(() => loadConfig(baseConfigShape, env), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems.map((p) => p.variable).sort(), [
        'AMQP_URL', 'DATABASE_SCHEMA', 'DATABASE_URL', 'HTTP_PORT', 'LOG_LEVEL', 'MIGRATE', 'REDIS_URL', 'SHUTDOWN_TIMEOUT_MS',
      ]);
      for (const v of ['AMQP_URL', 'HTTP_PORT', 'MIGRATE']) assert.match(e.message, new RegExp(`${v}: `));
      assert.doesNotMatch(e.message, /hunter2/);
      assert.match(e.problems.find((p) => p.variable === 'AMQP_URL')!.message, /amqp:\/\/ or amqps:\/\//);
      return true;
    });
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
    assert.throws(() => loadConfig(shape, {}), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(e.problems, [{ variable: 'KMS_KEY_RING', message: 'required' }]);
      return true;
    });
  });
});
