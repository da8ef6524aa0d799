import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cleanMessage } from '@wallet-fleet/contracts';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Registry } from 'prom-client';
import type { Component, ServiceState } from './lifecycle.js';
import { scrubCredentials, type Logger } from './logger.js';

/**
 * One dependency check. It resolves (optionally with details shown on /health) when the
 * dependency works and throws when it does not. `readiness: false` shows it on /health only.
 */
export interface Check {
  name: string;
  check: () => Promise<void | Record<string, unknown>>;
  /** Past this the check counts as failed (default 2000 ms): a hung dependency must not hang a probe. */
  timeoutMs?: number;
  /** Whether /ready depends on it (default true). */
  readiness?: boolean;
}

interface CheckResult {
  status: 'up' | 'down';
  latencyMs: number;
  readiness: boolean;
  error?: string;
  details?: Record<string, unknown>;
}

const DEFAULT_CHECK_TIMEOUT_MS = 2000;

/** An express app as both listeners serve it: no framework banner, no ETags, helmet's headers, nothing cached. */
function hardenedApp(): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(helmet());
  app.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  return app;
}

/**
 * The probe and metrics server of a service (express 5 + helmet):
 * - `GET /live`: 200 while the process runs (nothing is checked: a restart would not fix a dependency);
 * - `GET /ready`: 200 when every readiness check passes and the service is running, else 503 with
 *   `failed` naming the checks that did not pass;
 * - `GET /health`: each check's status, latency and error text (credentials masked); 503 if any is down;
 * - `GET /metrics`: `registry` in the Prometheus text format;
 * - anything else: 404 JSON.
 *
 * Start it first among a service's components so that probes answer while the rest starts (and,
 * stopped last, while the rest drains). Registered in a service, it reports not-ready as soon as
 * the service leaves `running`, before any component stops.
 *
 * `start()` rejects with the listen error (e.g. `EADDRINUSE`).
 */
export function createHttpServer(opts: {
  port: number;
  host?: string;
  registry: Registry;
  checks: Check[];
  logger: Logger;
  /**
   * The service's own endpoints (e.g. a webhook intake), mounted after the probes and before the
   * 404 handler. They get helmet and `Cache-Control: no-store` like the probes; body parsing is
   * theirs to choose (a signature check may need the raw body).
   */
  routes?: express.Router;
}): Component & { port(): number } {
  const { registry, checks, logger } = opts;
  const log = logger.child({ component: 'http' });
  // Undefined when used outside a service: readiness then depends on the checks alone.
  let serviceState: ServiceState | undefined;
  // Concurrent probes share one run per check, so a slow dependency is not asked N times at once.
  const inFlight = new Map<Check, Promise<CheckResult>>();
  // Per check: its last status, and whether that failure was reported as a warning.
  const last = new Map<string, { status: CheckResult['status']; warned: boolean }>();
  // While a service starts, its checks fail as a matter of course (the pool is not open yet, the KMS
  // key ring is only created by the kms component's start): that is debug, not an alarm. A failure
  // still there once the service runs is warned then. Outside a service there is no start to wait for.
  const alarming = () => serviceState === undefined || serviceState === 'running';

  const runCheck = (c: Check): Promise<CheckResult> => {
    const running = inFlight.get(c);
    if (running) return running;
    const p = timedCheck(c).then((r) => {
      const before = last.get(c.name);
      // Log changes only: probes poll every few seconds and a steady state is not news.
      if (r.status === 'down') {
        if (alarming()) {
          if (!before?.warned) log.warn({ check: c.name, error: r.error }, 'check failed');
          last.set(c.name, { status: 'down', warned: true });
        } else {
          if (before?.status !== 'down') log.debug({ check: c.name, error: r.error, service: serviceState }, 'check failed while the service is not running');
          last.set(c.name, { status: 'down', warned: before?.warned ?? false });
        }
      } else {
        if (before?.status === 'down') {
          if (before.warned) log.info({ check: c.name }, 'check recovered');
          else log.debug({ check: c.name }, 'check passed');
        }
        last.set(c.name, { status: 'up', warned: false });
      }
      return r;
    });
    inFlight.set(c, p);
    void p.finally(() => inFlight.delete(c));
    return p;
  };

  const runAll = async (which: Check[]) => {
    const results = await Promise.all(which.map(runCheck));
    return Object.fromEntries(which.map((c, i) => [c.name, results[i]!]));
  };

  const app = hardenedApp();

  app.get('/live', (_req, res) => {
    res.json({ status: 'live' });
  });

  app.get('/ready', async (_req, res) => {
    const results = await runAll(checks.filter((c) => c.readiness !== false));
    const failed = Object.entries(results)
      .filter(([, r]) => r.status === 'down')
      .map(([name]) => name);
    const body: Record<string, unknown> = { status: 'ready', checks: results };
    if (serviceState !== undefined && serviceState !== 'running') {
      failed.unshift('service');
      body.service = serviceState;
    }
    if (failed.length > 0) {
      body.status = 'not_ready';
      body.failed = failed;
    }
    res.status(failed.length > 0 ? 503 : 200).json(body);
  });

  app.get('/health', async (_req, res) => {
    const results = await runAll(checks);
    const down = Object.values(results).some((r) => r.status === 'down');
    res.status(down ? 503 : 200).json({
      status: down ? 'down' : 'up',
      ...(serviceState === undefined ? {} : { service: serviceState }),
      uptimeSeconds: Math.round(process.uptime()),
      checks: results,
    });
  });

  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', registry.contentType).send(await registry.metrics());
  });

  if (opts.routes) app.use(opts.routes);

  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });

  // Express 5 sends rejected async handlers here; the body never echoes error text to the caller.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    log.error({ err, path: req.path }, 'http handler failed');
    if (!res.headersSent) res.status(500).json({ error: { code: 'INTERNAL', message: 'internal error' } });
  });

  return Object.assign(listener('http', app, opts.port, opts.host ?? '0.0.0.0', log), {
    onServiceState(state: ServiceState) {
      serviceState = state;
    },
  });
}

/**
 * The admin listener of a service: its state-changing endpoints (`routes`, e.g. reconciliation's
 * `POST /runs`), apart from the port that serves probes, metrics and webhooks to the world. Bind it
 * to loopback (the default of `ADMIN_HTTP_HOST`); with `token`, every request needs
 * `Authorization: Bearer <token>` (compared in constant time) or gets 401. Elsewhere than loopback a
 * token is required (`loadConfig` refuses the configuration without one).
 *
 * `start()` rejects with the listen error (e.g. `EADDRINUSE`).
 */
export function createAdminServer(opts: { port: number; host: string; token?: string | undefined; routes: express.Router; logger: Logger }): Component & {
  port(): number;
} {
  const log = opts.logger.child({ component: 'admin-http' });
  const app = hardenedApp();
  const { token } = opts;
  if (token !== undefined) {
    // Hashes of equal length, so that neither the comparison nor its length check tells how much matched.
    const expected = createHash('sha256').update(`Bearer ${token}`).digest();
    app.use((req, res, next) => {
      const given = createHash('sha256')
        .update(req.headers.authorization ?? '')
        .digest();
      if (timingSafeEqual(given, expected)) return next();
      res
        .set('WWW-Authenticate', 'Bearer')
        .status(401)
        .json({ error: { code: 'UNAUTHENTICATED', message: 'Authorization: Bearer <ADMIN_TOKEN> required' } });
    });
  }
  app.use(opts.routes);
  app.use((_req, res) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'no such endpoint' } });
  });
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    log.error({ err, path: req.path }, 'admin handler failed');
    if (!res.headersSent) res.status(500).json({ error: { code: 'INTERNAL', message: 'internal error' } });
  });
  return listener('admin-http', app, opts.port, opts.host, log);
}

/** `app` served on `host:port` as a component: start safe twice, stop closes idle sockets and cuts the rest after a second. */
function listener(name: string, app: express.Express, port: number, host: string, log: Logger): Component & { port(): number } {
  let server: Server | undefined;
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  return {
    name,
    port() {
      const addr = server?.address();
      if (!addr || typeof addr === 'string') throw new Error(`${name} server is not listening`);
      return (addr as AddressInfo).port;
    },
    start() {
      starting ??= (async () => {
        const s = createServer(app);
        // Probes are short: a half-open or idle client must not keep a stopping process alive.
        s.keepAliveTimeout = 5000;
        s.headersTimeout = 10_000;
        s.requestTimeout = 30_000;
        s.listen(port, host);
        await once(s, 'listening');
        server = s;
        const bound = (s.address() as AddressInfo).port;
        // The fleet runner reads the service's port from the exact `http server listening` line.
        if (name === 'http') log.info({ port: bound }, 'http server listening');
        else log.info({ port: bound, host }, 'admin server listening');
      })();
      return starting;
    },
    stop() {
      stopping ??= (async () => {
        const s = server;
        if (!s) return;
        const closed = new Promise<void>((done) => s.close(() => done()));
        s.closeIdleConnections();
        // A request still running (a slow /metrics scrape) gets a moment, then its socket goes.
        const force = setTimeout(() => s.closeAllConnections(), 1000);
        await closed;
        clearTimeout(force);
      })();
      return stopping;
    },
  };
}

async function timedCheck(c: Check): Promise<CheckResult> {
  const timeoutMs = c.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const readiness = c.readiness !== false;
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const details = await Promise.race([
      Promise.resolve().then(c.check),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return {
      status: 'up',
      latencyMs: round(performance.now() - started),
      readiness,
      ...(details && Object.keys(details).length > 0 ? { details } : {}),
    };
  } catch (e) {
    return {
      status: 'down',
      latencyMs: round(performance.now() - started),
      readiness,
      error: cleanMessage(scrubCredentials(e instanceof Error ? e.message || e.name : String(e))),
    };
  } finally {
    clearTimeout(timer);
  }
}

const round = (ms: number) => Math.round(ms * 10) / 10;
