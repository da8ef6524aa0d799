import { once } from 'node:events';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { Redis } from 'ioredis';
import type { Check } from './http.js';
import type { Component } from './lifecycle.js';
import { safeUrl, scrubCredentials, type Logger } from './logger.js';

export type { Redis } from 'ioredis';

/** A Redis client with its readiness check and lifecycle component. */
export interface RedisHandle {
  client: Redis;
  /** `PING`. */
  check: Check;
  /** start: connect and wait for ready; stop: `QUIT` (then a hard disconnect if that fails). */
  component: Component;
}

/** Reconnect delay after the n-th failed attempt: 50 ms doubling, capped at 2 s; it never gives up. */
function redisReconnectDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt - 1, 6), 2000);
}

/**
 * An ioredis client tuned to fail fast rather than hang:
 * - reconnects forever with a bounded backoff (`redisReconnectDelay`);
 * - `maxRetriesPerRequest: 1`: a command in flight when the connection drops is retried once
 *   after the reconnect, then rejected;
 * - the offline queue is on only until the first `ready`: commands sent while starting wait for
 *   the connection, but once running, a command while Redis is down rejects at once
 *   ("Stream isn't writeable…") instead of piling up in memory.
 * - `keyPrefix` is put before every key, including the keys of Lua scripts.
 * - auto-pipelining: the commands issued in one turn of the event loop (the rate limiter's and the
 *   replay guard's of every request in flight) leave in one write and come back in one read.
 *
 * The client does not connect until `component.start()`, which rejects with `FleetError`
 * `UNAVAILABLE` (and disconnects) when Redis cannot be reached.
 */
export function createRedis(opts: { url: string; keyPrefix?: string; logger: Logger; connectionName?: string }): RedisHandle {
  const log = opts.logger.child({ component: 'redis' });
  const client = new Redis(opts.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    retryStrategy: redisReconnectDelay,
    enableAutoPipelining: true,
    ...(opts.keyPrefix ? { keyPrefix: opts.keyPrefix } : {}),
    ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
  });

  let wasReady = false;
  let reportedDown = false;
  client.on('ready', () => {
    // ioredis reads this option per command, so flipping it here takes effect at once.
    client.options.enableOfflineQueue = false;
    if (reportedDown) log.info('redis reconnected');
    wasReady = true;
    reportedDown = false;
  });
  // ioredis emits 'error' on every failed reconnect attempt; a listener is mandatory (else it
  // prints to stderr) and one line per outage is enough.
  client.on('error', (err) => {
    if (wasReady && !reportedDown) {
      reportedDown = true;
      log.warn({ err }, 'redis connection lost, reconnecting');
    }
  });

  let startCall: Promise<void> | undefined;
  let stopCall: Promise<void> | undefined;
  return {
    client,
    check: {
      name: 'redis',
      check: async () => {
        // A command on a lazy client that has not started would connect it behind start()'s back
        // (and make start's connect() fail with "already connecting"): probes must not do that.
        if (client.status === 'wait') throw new Error('not started');
        await client.ping();
      },
    },
    component: {
      name: 'redis',
      start() {
        startCall ??= (async () => {
          try {
            await client.connect();
          } catch (err) {
            // ioredis has already scheduled its reconnect by now; without the offline queue,
            // commands on this dead client reject instead of waiting for a connection forever.
            client.options.enableOfflineQueue = false;
            client.disconnect();
            throw new FleetError(
              ErrorCode.UNAVAILABLE,
              `redis at ${safeUrl(opts.url)} unreachable: ${scrubCredentials(err instanceof Error ? err.message : String(err))}`,
              { cause: err },
            );
          }
          log.info({ url: safeUrl(opts.url) }, 'redis ready');
        })();
        return startCall;
      },
      stop() {
        stopCall ??= (async () => {
          client.options.enableOfflineQueue = false;
          if (client.status === 'end') return;
          if (client.status !== 'ready') {
            client.disconnect();
            return;
          }
          const ended = once(client, 'end');
          try {
            // QUIT lets replies to commands already sent arrive; disconnect() would drop them.
            await client.quit();
          } catch {
            client.disconnect();
          }
          await ended;
        })();
        return stopCall;
      },
    },
  };
}
