import type { Component } from './lifecycle.js';

export interface PeriodicOptions<T> {
  /** The component's name (lifecycle logs). */
  name: string;
  /** From the end of one pass to the start of the next. */
  intervalMs: number;
  /** From start() to the first pass; `intervalMs` when not given. */
  initialDelayMs?: number;
  /** Each delay is drawn within ±`jitter` of itself (0.1: ±10 %), so that replicas drift apart. Default 0. */
  jitter?: number;
  /** One pass of the work. */
  run: () => Promise<T>;
  /** A pass that threw: log or count it; the next pass comes all the same. */
  onError: (err: unknown) => void;
}

/**
 * Work done in passes, now and then, for as long as the service runs: the first pass
 * `initialDelayMs` after start(), each next one `intervalMs` after the previous one ended. Passes
 * never overlap: `runOnce()` (a test, an operator's request) joins the pass in flight or starts one.
 * stop() cancels the next pass and waits for the one in flight.
 */
export function createPeriodic<T>(o: PeriodicOptions<T>): Component & { runOnce(): Promise<T> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<T> | undefined;
  let active = false;
  const delay = (ms: number) => Math.round(ms * (1 + (o.jitter ?? 0) * (2 * Math.random() - 1)));

  const runOnce = (): Promise<T> => {
    running ??= o.run().finally(() => (running = undefined));
    return running;
  };
  const tick = () => {
    runOnce()
      .catch(o.onError)
      .finally(() => {
        if (active) timer = setTimeout(tick, delay(o.intervalMs));
      });
  };

  return {
    name: o.name,
    runOnce,
    async start() {
      if (active) return;
      active = true;
      timer = setTimeout(tick, delay(o.initialDelayMs ?? o.intervalMs));
    },
    async stop() {
      active = false;
      clearTimeout(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}
