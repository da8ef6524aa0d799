import { collectDefaultMetrics, Registry } from 'prom-client';

export type { Registry } from 'prom-client';

/**
 * The metrics registry of one service: prom-client's default process metrics (CPU, memory, event
 * loop lag, GC, handles) plus whatever the service registers, every series labelled
 * `service="<service>"`. Serve it with `createHttpServer({ registry })`.
 */
export function createMetrics(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The metric named `name` in `registry`, made by `make` (which must register it there under that
 * name) the first time. Code that runs more than once per registry (two brokers, one breaker per
 * endpoint, a relay per schema) shares one series set instead of failing on the second
 * registration, which prom-client refuses.
 */
export function getOrCreateMetric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}
