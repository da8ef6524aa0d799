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
