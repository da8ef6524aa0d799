import type { Component } from '@wallet-fleet/service-kit';
import type { Outbox } from './outbox.js';
import type { Broker } from './types.js';

/**
 * The broker as a service component: start connects and starts consuming; stop cancels the
 * consumers and waits up to `timeoutMs` (a service's `SHUTDOWN_TIMEOUT_MS`) for the handlers in
 * flight. Place it after the pools its handlers use, so that it stops (and drains) before they close.
 */
export function brokerComponent(broker: Pick<Broker, 'start' | 'stop'>, opts: { timeoutMs: number }): Component {
  return { name: 'broker', start: () => broker.start(), stop: () => broker.stop({ timeoutMs: opts.timeoutMs }) };
}

/**
 * The outbox relay as a service component. Place it after the broker: it stops first, after its
 * pass in flight, and rows written while consumers drain wait in the table for the next start.
 */
export function outboxComponent(outbox: Pick<Outbox, 'start' | 'stop'>): Component {
  return { name: 'outbox', start: () => outbox.start(), stop: () => outbox.stop() };
}
