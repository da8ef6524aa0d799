import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { Writable } from 'node:stream';
import express from 'express';
import { after, afterEach, before, describe, it } from 'mocha';
import { Counter } from 'prom-client';
import { backingServices, createSchemaName, waitFor } from '@wallet-fleet/testing';
import {
  createAdminServer,
  createHttpServer,
  createLogger,
  createMetrics,
  createPgPool,
  createRedis,
  createService,
  type Check,
  type PgPool,
  type RedisHandle,
} from '@wallet-fleet/service-kit';

const quiet = () => createLogger({ service: 'http-test', level: 'silent', destination: new Writable({ write: (_c, _e, d) => d() }) });

async function get(port: number, path: string) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  const text = await res.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

describe('createHttpServer', () => {
  let db: PgPool;
  let redis: RedisHandle;
  let dropSchema: () => Promise<void>;
  const flags = { brokerUp: true };
  const broker: Check = {
    name: 'broker',
    check: async () => {
      if (!flags.brokerUp) throw new Error('connection to amqp://guest:brokerpw@127.0.0.1:5672 closed');
      return { channels: 2 };
    },
  };
  const hung: Check = { name: 'kms', check: () => new Promise(() => {}), timeoutMs: 50, readiness: false };

  before(async () => {
    const { databaseUrl, redisUrl } = await backingServices();
    const s = await createSchemaName('kit_http');
    dropSchema = s.drop;
    db = createPgPool({ url: databaseUrl, schema: s.schema });
    redis = createRedis({ url: redisUrl, keyPrefix: `kit_http_${s.schema}:`, logger: quiet() });
    await redis.component.start();
  });
  after(async () => {
    await db.component.stop();
    await redis.component.stop();
    await dropSchema();
  });

  const server = (checks: Check[]) => {
    const registry = createMetrics('probe-svc');
    return { registry, http: createHttpServer({ port: 0, host: '127.0.0.1', registry, checks, logger: quiet() }) };
  };

  it('should answer /live with 200 and helmet security headers', async () => {
    const { http } = server([]);
    await http.start();
    try {
      const res = await get(http.port(), '/live');
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { status: 'live' });
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('x-powered-by'), null);
    } finally {
      await http.stop();
    }
  });

  it('should answer /ready with 200 when PostgreSQL, Redis and the broker check pass (a non-readiness check failing does not matter)', async () => {
    flags.brokerUp = true;
    const { http } = server([db.check, redis.check, broker, hung]);
    await http.start();
    try {
      const res = await get(http.port(), '/ready');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.status, 'ready');
      assert.deepEqual(Object.keys(res.body.checks).sort(), ['broker', 'postgres', 'redis']);
    } finally {
      await http.stop();
    }
  });

  it('should answer /ready with 503 naming the failed check, with credentials masked', async () => {
    flags.brokerUp = false;
    const { http } = server([db.check, redis.check, broker]);
    await http.start();
    try {
      const res = await get(http.port(), '/ready');
      assert.equal(res.status, 503);
      assert.equal(res.body.status, 'not_ready');
      assert.deepEqual(res.body.failed, ['broker']);
      assert.equal(res.body.checks.postgres.status, 'up');
      assert.match(res.body.checks.broker.error, /connection to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672 closed/);
      assert.doesNotMatch(JSON.stringify(res.body), /brokerpw/);
      flags.brokerUp = true;
      assert.equal((await get(http.port(), '/ready')).status, 200);
    } finally {
      flags.brokerUp = true;
      await http.stop();
    }
  });

  it('should answer /ready with 503 instead of hanging when a readiness check hangs', async () => {
    const stuck: Check = { name: 'database', check: () => new Promise(() => {}), timeoutMs: 100 };
    const { http } = server([redis.check, stuck]);
    await http.start();
    try {
      const res = await get(http.port(), '/ready');
      assert.equal(res.status, 503);
      assert.deepEqual(res.body.failed, ['database']);
      assert.match(res.body.checks.database.error, /timed out after 100 ms/);
    } finally {
      await http.stop();
    }
  });

  it('should show each dependency on /health with status, latency and error text', async () => {
    flags.brokerUp = true;
    const { http } = server([db.check, redis.check, broker, hung]);
    await http.start();
    try {
      const res = await get(http.port(), '/health');
      assert.equal(res.status, 503);
      assert.equal(res.body.status, 'down');
      const { postgres, redis: r, broker: b, kms } = res.body.checks;
      assert.equal(postgres.status, 'up');
      assert.equal(typeof postgres.latencyMs, 'number');
      assert.equal(typeof postgres.details.total, 'number');
      assert.equal(r.status, 'up');
      assert.deepEqual(b.details, { channels: 2 });
      assert.equal(kms.status, 'down');
      assert.equal(kms.readiness, false);
      assert.match(kms.error, /timed out/);
    } finally {
      await http.stop();
    }
  });

  it('should serve default metrics and the service registry labelled with the service on /metrics', async () => {
    const { http, registry } = server([]);
    const jobs = new Counter({ name: 'jobs_done_total', help: 'jobs', registers: [registry] });
    jobs.inc(3);
    await http.start();
    try {
      const res = await get(http.port(), '/metrics');
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
      assert.match(res.body, /^jobs_done_total\{service="probe-svc"\} 3$/m);
      assert.match(res.body, /^process_cpu_user_seconds_total\{service="probe-svc"\} /m);
      assert.match(res.body, /^nodejs_eventloop_lag_seconds\{service="probe-svc"\} /m);
    } finally {
      await http.stop();
    }
  });

  it('should answer unknown paths with a 404 JSON error', async () => {
    const { http } = server([]);
    await http.start();
    try {
      const res = await get(http.port(), '/admin/secrets');
      assert.equal(res.status, 404);
      assert.deepEqual(res.body, { error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
    } finally {
      await http.stop();
    }
  });

  it('should report not ready as soon as its service is stopping, while /live still answers', async () => {
    const { http } = server([redis.check]);
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let stopEntered!: () => void;
    const entered = new Promise<void>((r) => (stopEntered = r));
    const consumers = {
      name: 'consumers',
      start: async () => {},
      stop: async () => {
        stopEntered();
        await released;
      },
    };
    const svc = createService({ name: 'probe-svc', logger: quiet(), components: [http, consumers] });
    await svc.start();
    const port = http.port();
    assert.equal((await get(port, '/ready')).status, 200);
    const stopping = svc.stop();
    await entered;
    const ready = await get(port, '/ready');
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.body.failed, ['service']);
    assert.equal(ready.body.service, 'stopping');
    assert.equal((await get(port, '/live')).status, 200);
    release();
    await stopping;
    await assert.rejects(fetch(`http://127.0.0.1:${port}/live`));
  });

  describe('logging of failing checks', () => {
    /** A logger at debug level whose lines the test reads. */
    const recording = () => {
      const lines: Array<{ level: string; msg: string; check?: string }> = [];
      const destination = new Writable({
        write: (chunk, _e, done) => {
          for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
          done();
        },
      });
      return { lines, logger: createLogger({ service: 'probe-svc', level: 'debug', destination }) };
    };
    const checkLines = (lines: Array<{ level: string; msg: string; check?: string }>) => lines.filter((l) => l.check === 'ring');

    it('should log a check failing while its service starts at debug only, and warn once it fails on the running service', async () => {
      const { lines, logger } = recording();
      const ring = { exists: false };
      // As the KMS check: the resource it asks for is only created by a later component's start.
      const ringCheck: Check = {
        name: 'ring',
        check: async () => {
          if (!ring.exists) throw new Error('5 NOT_FOUND: KeyRing not found');
        },
      };
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const creator = {
        name: 'kms',
        start: async () => {
          await gate;
          ring.exists = true;
        },
        stop: async () => {},
      };
      const http = createHttpServer({ port: 0, host: '127.0.0.1', registry: createMetrics('probe-svc'), checks: [ringCheck], logger });
      const svc = createService({ name: 'probe-svc', logger, components: [http, creator] });
      const starting = svc.start();
      await waitFor(() => svc.state() === 'starting' && lines.some((l) => l.msg === 'component started'), { what: 'http started' });
      const port = http.port();
      assert.equal((await get(port, '/ready')).status, 503);
      assert.equal((await get(port, '/ready')).status, 503);
      assert.deepEqual(
        checkLines(lines).map((l) => l.level),
        ['debug'],
        JSON.stringify(lines),
      );
      release();
      await starting;
      assert.equal((await get(port, '/ready')).status, 200);
      assert.ok(!lines.some((l) => l.level === 'warn'), JSON.stringify(lines));
      ring.exists = false;
      assert.equal((await get(port, '/ready')).status, 503);
      assert.equal((await get(port, '/ready')).status, 503);
      const warned = checkLines(lines).filter((l) => l.level === 'warn');
      assert.equal(warned.length, 1, JSON.stringify(lines));
      assert.equal(warned[0]!.msg, 'check failed');
      ring.exists = true;
      assert.equal((await get(port, '/ready')).status, 200);
      assert.equal(checkLines(lines).at(-1)!.msg, 'check recovered');
      await svc.stop();
    });

    it('should warn about a check that failed during start and still fails once the service runs', async () => {
      const { lines, logger } = recording();
      const down: Check = {
        name: 'ring',
        check: async () => {
          throw new Error('5 NOT_FOUND: KeyRing not found');
        },
      };
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const slow = { name: 'slow', start: () => gate, stop: async () => {} };
      const http = createHttpServer({ port: 0, host: '127.0.0.1', registry: createMetrics('probe-svc'), checks: [down], logger });
      const svc = createService({ name: 'probe-svc', logger, components: [http, slow] });
      const starting = svc.start();
      await waitFor(() => lines.some((l) => l.msg === 'component started'), { what: 'http started' });
      assert.equal((await get(http.port(), '/ready')).status, 503);
      assert.ok(!checkLines(lines).some((l) => l.level === 'warn'), JSON.stringify(lines));
      release();
      await starting;
      assert.equal((await get(http.port(), '/ready')).status, 503);
      assert.deepEqual(
        checkLines(lines)
          .filter((l) => l.level === 'warn')
          .map((l) => l.msg),
        ['check failed'],
        JSON.stringify(lines),
      );
      await svc.stop();
    });
  });

  it('should reject start with the listen error when the port is taken', async () => {
    const { http: first } = server([]);
    await first.start();
    try {
      const registry = createMetrics('probe-svc');
      const second = createHttpServer({ port: first.port(), host: '127.0.0.1', registry, checks: [], logger: quiet() });
      await assert.rejects(second.start(), /EADDRINUSE/);
    } finally {
      await first.stop();
    }
  });
});

describe('http server: service routes', () => {
  it("should serve the service's own routes beside the probes, and 404 the rest", async () => {
    const { createHttpServer, createLogger } = await import('@wallet-fleet/service-kit');
    const { Registry } = await import('prom-client');
    const express = (await import('express')).default;
    const routes = express.Router();
    routes.post('/hooks', express.raw({ type: '*/*' }), (req, res) => void res.status(202).json({ bytes: (req.body as Buffer).length }));
    const server = createHttpServer({ port: 0, registry: new Registry(), checks: [], logger: createLogger({ service: 't', level: 'silent' }), routes });
    await server.start();
    try {
      const base = `http://127.0.0.1:${server.port()}`;
      const posted = await fetch(`${base}/hooks`, { method: 'POST', body: 'hello' });
      assert.equal(posted.status, 202);
      assert.deepEqual(await posted.json(), { bytes: 5 });
      assert.equal((await fetch(`${base}/live`)).status, 200);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
    } finally {
      await server.stop();
    }
  });
});

describe('createAdminServer', () => {
  const routes = () => {
    const r = express.Router();
    r.post('/runs', (_req, res) => {
      res.json({ outcome: 'completed' });
    });
    return r;
  };
  const servers: Array<{ stop(): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  it('should serve its routes on loopback only, with 404 JSON for anything else', async () => {
    const admin = createAdminServer({ port: 0, host: '127.0.0.1', routes: routes(), logger: quiet() });
    servers.push(admin);
    await admin.start();
    const res = await fetch(`http://127.0.0.1:${admin.port()}/runs`, { method: 'POST' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { outcome: 'completed' });
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal((await get(admin.port(), '/metrics')).status, 404);
    const other = nonLoopbackAddress();
    if (other) await assert.rejects(fetch(`http://${other}:${admin.port()}/runs`, { method: 'POST' }), 'not reachable from another interface');
  });

  it('should answer 401 without the bearer token or with a wrong one, and serve the request with it', async () => {
    const token = 'a'.repeat(40);
    const admin = createAdminServer({ port: 0, host: '127.0.0.1', token, routes: routes(), logger: quiet() });
    servers.push(admin);
    await admin.start();
    const post = (authorization?: string) =>
      fetch(`http://127.0.0.1:${admin.port()}/runs`, { method: 'POST', ...(authorization ? { headers: { authorization } } : {}) });
    const none = await post();
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    assert.equal((await post(`Bearer ${'a'.repeat(39)}b`)).status, 401);
    assert.equal((await post(token)).status, 401, 'the scheme is part of the header');
    assert.equal((await post(`Bearer ${token}`)).status, 200);
  });
});

/** An IPv4 address of this machine other than loopback, if it has one. */
function nonLoopbackAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
}
