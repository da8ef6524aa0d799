import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { ConfigError } from './config.js';
import { createLogger, drainLogger, type Logger } from './logger.js';

/** A part of a service with a start and a stop: a pool, a broker connection, consumers, the HTTP server. */
export interface Component {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Optional: told of every state change of the service that runs this component, before the
   * service acts on it (the HTTP server reports not-ready as soon as the state is `stopping`).
   */
  onServiceState?(state: ServiceState): void;
}

/**
 * The state of a service:
 *
 * ```text
 *  idle ──start()──▶ starting ──all started──▶ running ──stop()──▶ stopping ──▶ stopped
 *    │                  │ a start failed, or stop() during start     ▲
 *    │                  └────────────────────────────────────────────┘
 *    └──stop()──▶ stopped
 * ```
 *
 * `stopped` is final: a service is not restarted (start a new process). Any other transition
 * throws `FleetError` `INTERNAL`.
 */
export type ServiceState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

const allowed: Record<ServiceState, readonly ServiceState[]> = {
  idle: ['starting', 'stopped'],
  starting: ['running', 'stopping'],
  running: ['stopping'],
  stopping: ['stopped'],
  stopped: [],
};

export interface Service extends Component {
  state(): ServiceState;
}

/**
 * Runs `components` as one service: `start()` starts them in order, `stop()` stops the started
 * ones in reverse order, each stop bounded by `stopTimeoutMs` (default 10000). Order components
 * so that what others use comes first: e.g. HTTP server, pool, Redis, broker connection,
 * consumers; stop then ends consuming and drains handlers before it closes what they used.
 *
 * `start()` and `stop()` are safe to call twice: a second call returns the call in flight.
 * `start()` rejects with the first component's start error (after stopping what had started),
 * or with `FleetError` `INTERNAL` when the service was already stopped or stopping.
 * `stop()` during start waits for the component being started, then stops the started ones.
 * `stop()` rejects with an `AggregateError` naming the components that failed or timed out in
 * their stop; the others are still stopped, and the state ends `stopped` either way.
 */
export function createService(opts: { name: string; logger: Logger; components: Component[]; stopTimeoutMs?: number }): Service {
  const { components } = opts;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const log = opts.logger.child({ lifecycle: opts.name });
  let state: ServiceState = 'idle';
  let startCall: Promise<void> | undefined;
  let stopCall: Promise<void> | undefined;
  let stopRequested = false;
  let abortFailures: Error[] = [];
  const started: Component[] = [];

  const transition = (to: ServiceState) => {
    if (!allowed[state].includes(to)) {
      throw new FleetError(ErrorCode.INTERNAL, `service ${opts.name}: illegal transition ${state} → ${to}`, {
        retryable: false,
      });
    }
    log.debug({ from: state, to }, 'service state');
    state = to;
    for (const c of components) {
      try {
        c.onServiceState?.(to);
      } catch (err) {
        log.warn({ err, component: c.name }, 'onServiceState failed');
      }
    }
  };

  // Stops what has started, newest first; never throws, returns the failures.
  const stopStarted = async (): Promise<Error[]> => {
    const failures: Error[] = [];
    while (started.length > 0) {
      const c = started.pop()!;
      const t0 = Date.now();
      try {
        await withTimeout(c.stop(), stopTimeoutMs, `${c.name} did not stop within ${stopTimeoutMs} ms`);
        log.info({ component: c.name, ms: Date.now() - t0 }, 'component stopped');
      } catch (err) {
        log.error({ err, component: c.name }, 'component stop failed');
        failures.push(new Error(`${c.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      }
    }
    return failures;
  };

  const doStart = async () => {
    transition('starting');
    for (const c of components) {
      if (stopRequested) break;
      const t0 = Date.now();
      try {
        await c.start();
      } catch (err) {
        log.error({ err, component: c.name }, 'component failed to start');
        transition('stopping');
        await stopStarted();
        transition('stopped');
        throw err;
      }
      started.push(c);
      log.info({ component: c.name, ms: Date.now() - t0 }, 'component started');
    }
    if (stopRequested) {
      transition('stopping');
      abortFailures = await stopStarted();
      transition('stopped');
      throw new FleetError(ErrorCode.UNAVAILABLE, `service ${opts.name} was stopped while starting`);
    }
    transition('running');
    log.info('service running');
  };

  const doStop = async () => {
    if (state === 'idle') {
      transition('stopped');
      return;
    }
    // doStop runs once (memoised by stop()), so `stopping` here means a failing start is
    // already stopping the started components: wait for it like for a start in progress.
    if (state === 'starting' || state === 'stopping') {
      stopRequested = true;
      // The start loop sees the flag after the component it is starting, and stops the started ones.
      await startCall?.catch(() => undefined);
      if (abortFailures.length > 0) {
        throw new AggregateError(abortFailures, `service ${opts.name} stopped uncleanly: ${abortFailures.map((f) => f.message).join('; ')}`);
      }
      return;
    }
    if (state !== 'running') return;
    transition('stopping');
    log.info('service stopping');
    const failures = await stopStarted();
    transition('stopped');
    if (failures.length > 0) {
      throw new AggregateError(failures, `service ${opts.name} stopped uncleanly: ${failures.map((f) => f.message).join('; ')}`);
    }
    log.info('service stopped');
  };

  return {
    name: opts.name,
    state: () => state,
    start() {
      if (startCall && (state === 'starting' || state === 'running')) return startCall;
      if (state !== 'idle') {
        return Promise.reject(new FleetError(ErrorCode.INTERNAL, `service ${opts.name}: illegal transition ${state} → starting`, { retryable: false }));
      }
      startCall = doStart();
      return startCall;
    },
    stop() {
      stopCall ??= doStop();
      return stopCall;
    },
  };
}

/** `p`, or a rejection with `message` after `ms`; the timer never keeps the process alive. */
function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new FleetError(ErrorCode.TIMEOUT, message)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The one place that owns the process: starts `service`, and handles SIGTERM/SIGINT (graceful
 * stop, exit 0, or 1 when a component failed to stop in time), a second signal (exit 2 at once),
 * a failed start (cause logged, exit 1), and an uncaughtException or unhandledRejection (logged,
 * graceful stop, exit 1). Call it once per process, from `main.ts`.
 */
export function runService(service: Service, logger: Logger): void {
  let stopping = false;
  let exitCode = 0;

  // Exit once the log lines written so far are out (see drainLogger): the last lines are the ones
  // that say why the process ends.
  let exiting = false;
  const exit = (code: number) => {
    if (exiting) {
      if (code === 2) process.exit(code);
      return;
    }
    exiting = true;
    process.exitCode = code;
    void drainLogger(logger).then(() => process.exit(code));
  };

  const shutdown = (code: number) => {
    exitCode = Math.max(exitCode, code);
    if (stopping) return;
    stopping = true;
    service.stop().then(
      () => {
        logger.info({ exitCode }, 'exiting');
        exit(exitCode);
      },
      (err) => {
        logger.error({ err }, 'unclean stop, exiting');
        exit(1);
      },
    );
  };

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: forcing exit');
      exit(2);
      return;
    }
    logger.info({ signal }, 'signal received: stopping');
    shutdown(0);
  };

  const onCrash = (kind: string) => (err: unknown) => {
    logger.fatal({ err }, `${kind}: stopping`);
    shutdown(1);
  };

  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', onCrash('uncaughtException'));
  process.on('unhandledRejection', onCrash('unhandledRejection'));

  service.start().then(
    () => undefined,
    (err) => {
      // A signal during start makes start reject too; that stop is already on its way to exit.
      if (stopping) return;
      logger.fatal({ err }, 'service failed to start');
      stopping = true;
      exit(1);
    },
  );
}

/** EX_CONFIG (sysexits.h): the configuration is wrong; restarting will not help. */
const EXIT_CONFIG = 78;

/**
 * The whole of a service's `main.ts`: loads its configuration, creates its logger (`LOG_LEVEL`)
 * and its service, and runs it (`runService`). A `ConfigError` stops the process before any
 * connection opens: `<name>: invalid configuration: VAR: problem; …` on stderr, exit 78
 * (EX_CONFIG). Any other error from `loadConfig` or `create` is thrown (the process exits 1).
 */
export function runServiceMain<C extends { LOG_LEVEL: string }>(opts: {
  name: string;
  loadConfig: () => C;
  create: (config: C, logger: Logger) => Service;
}): void {
  let config: C;
  try {
    config = opts.loadConfig();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`${opts.name}: ${e.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  const logger = createLogger({ service: opts.name, level: config.LOG_LEVEL });
  runService(opts.create(config, logger), logger);
}
