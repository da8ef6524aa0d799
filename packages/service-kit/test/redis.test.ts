import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'mocha';
import { Redis } from 'ioredis';
import { FleetError } from '@wallet-fleet/contracts';
import { createLogger, createRateLimiter, createRedis, type RedisHandle } from '@wallet-fleet/service-kit';
import { backingServices, waitFor } from '@wallet-fleet/testing';

const quiet = () => createLogger({ service: 'redis-test', level: 'silent', destination: new Writable({ write: (_c, _e, d) => d() }) });

/** A TCP proxy in front of the real Redis that the test can cut and restore: a real outage, seen from the client. */
class Outage {
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}
  async up() {
    const server = createServer((client) => {
      const upstream = createConnection(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => this.sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }
  async down() {
    const closed = new Promise((r) => this.server?.close(r));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

describe('createRedis', () => {
  let redisUrl: string;
  let raw: Redis;
  const prefix = `kit_redis_${randomBytes(4).toString('hex')}:`;
  before(async () => {
    redisUrl = (await backingServices()).redisUrl;
    raw = new Redis(redisUrl);
  });
  after(async () => {
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length) await raw.del(...keys);
    raw.disconnect();
  });

  it('should connect on start, answer its check, and put keyPrefix before every key', async () => {
    const r = createRedis({ url: redisUrl, keyPrefix: prefix, logger: quiet() });
    assert.equal(r.client.status, 'wait');
    await r.component.start();
    try {
      await r.check.check();
      await r.client.set('greeting', 'hello');
      assert.equal(await raw.get(`${prefix}greeting`), 'hello');
      assert.equal(await raw.get('greeting'), null);
    } finally {
      await r.component.stop();
    }
    assert.equal(r.client.status, 'end');
  });

  it('should fail its check before start without connecting, so an early probe cannot break start', async () => {
    const r = createRedis({ url: redisUrl, logger: quiet() });
    await assert.rejects(r.check.check(), /not started/);
    assert.equal(r.client.status, 'wait');
    await r.component.start();
    try {
      await r.check.check();
    } finally {
      await r.component.stop();
    }
  });

  it('should fail start with UNAVAILABLE and no password when Redis cannot be reached', async () => {
    const r = createRedis({ url: 'redis://:redis-pw-321@127.0.0.1:1', logger: quiet() });
    await assert.rejects(r.component.start(), (e: unknown) => {
      assert.ok(e instanceof FleetError);
      assert.equal(e.code, 'UNAVAILABLE');
      assert.doesNotMatch(e.message, /redis-pw-321/);
      return true;
    });
    await r.component.stop();
  });

  it('should reject commands at once while Redis is down (no queueing) and recover when it is back', async () => {
    const u = new URL(redisUrl);
    const outage = new Outage({ host: u.hostname, port: Number(u.port || 6379) });
    await outage.up();
    const r: RedisHandle = createRedis({ url: `redis://127.0.0.1:${outage.port}`, keyPrefix: prefix, logger: quiet() });
    await r.component.start();
    try {
      await r.client.set('before', '1');
      await outage.down();
      await waitFor(() => r.client.status !== 'ready', { what: 'client to notice the outage' });
      // With an offline queue these would wait for the reconnect, i.e. forever while Redis is down.
      await assert.rejects(r.client.get('before'));
      await assert.rejects(r.check.check());
      await outage.up();
      await waitFor(async () => (await r.check.check(), true), { what: 'redis check to pass again' });
      assert.equal(await r.client.get('before'), '1');
    } finally {
      await r.component.stop();
      await outage.down();
    }
  });
});

describe('createRateLimiter', () => {
  let handle: RedisHandle;
  let raw: Redis;
  const keyPrefix = `kit_rl_${randomBytes(4).toString('hex')}:`;
  before(async () => {
    const { redisUrl } = await backingServices();
    handle = createRedis({ url: redisUrl, keyPrefix, logger: quiet() });
    await handle.component.start();
    raw = new Redis(redisUrl);
  });
  after(async () => {
    const keys = await raw.keys(`${keyPrefix}*`);
    if (keys.length) await raw.del(...keys);
    raw.disconnect();
    await handle.component.stop();
  });

  it('should allow `limit` calls per window per key, then deny with remaining 0 and the time until a slot frees', async () => {
    const limiter = createRateLimiter({ redis: handle.client, prefix: 'withdrawals', limit: 3, windowMs: 300 });
    const taken = [];
    for (let i = 0; i < 4; i++) taken.push(await limiter.take('user-1'));
    assert.deepEqual(
      taken.map((t) => [t.allowed, t.remaining]),
      [
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
      ],
    );
    const denied = taken[3]!;
    assert.ok(denied.resetMs > 0 && denied.resetMs <= 300, String(denied.resetMs));
    // Another user has a budget of their own.
    assert.deepEqual(await limiter.take('user-2'), { allowed: true, remaining: 2, resetMs: 300 });
    // The key lives under the client's keyPrefix and the limiter's prefix, and expires with the window.
    const ttl = await raw.pttl(`${keyPrefix}withdrawals:user-1`);
    assert.ok(ttl > 0 && ttl <= 300, String(ttl));
    // Waits out the window the limiter announced: that `resetMs` holds is the behaviour under test.
    await new Promise((r) => setTimeout(r, denied.resetMs + 20));
    const again = await limiter.take('user-1');
    assert.equal(again.allowed, true);
  });

  it('should not count denied calls, so a client hammering a full window is let in once the window slides', async () => {
    const limiter = createRateLimiter({ redis: handle.client, prefix: 'hammer', limit: 2, windowMs: 200 });
    await limiter.take('u');
    await limiter.take('u');
    for (let i = 0; i < 10; i++) assert.equal((await limiter.take('u')).allowed, false);
    await waitFor(async () => (await limiter.take('u')).allowed, { intervalMs: 20, timeoutMs: 2000, what: 'a slot to free' });
  });

  it('should be atomic: of 40 concurrent calls exactly `limit` pass', async () => {
    const limiter = createRateLimiter({ redis: handle.client, prefix: 'burst', limit: 7, windowMs: 60_000 });
    const results = await Promise.all(Array.from({ length: 40 }, () => limiter.take('same-user')));
    assert.equal(results.filter((r) => r.allowed).length, 7);
    assert.deepEqual(
      results
        .filter((r) => r.allowed)
        .map((r) => r.remaining)
        .sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6],
    );
  });

  it('should reject with UNAVAILABLE when Redis does not answer', async () => {
    const r = createRedis({ url: 'redis://127.0.0.1:1', logger: quiet() });
    await r.component.start().catch(() => undefined);
    const limiter = createRateLimiter({ redis: r.client, prefix: 'down', limit: 1, windowMs: 1000 });
    await assert.rejects(limiter.take('u'), (e: unknown) => e instanceof FleetError && e.code === 'UNAVAILABLE' && e.retryable);
    await r.component.stop();
  });

  it('should refuse a limit or window that is not a positive integer', () => {
    assert.throws(() => createRateLimiter({ redis: handle.client, prefix: 'x', limit: 0, windowMs: 1000 }), TypeError);
    assert.throws(() => createRateLimiter({ redis: handle.client, prefix: 'x', limit: 1, windowMs: 1.5 }), TypeError);
  });
});
