import { randomUUID } from 'node:crypto';
import type { Component, Logger, RateLimiter } from '@wallet-fleet/service-kit';
import type { KeyCustody } from '../ports.js';
import type { KeyPoolStore } from '../store/key-pool-store.js';
import type { PoolKind } from '../store/wallet-store.js';
import type { KeyPoolMetrics } from './metrics.js';

export interface RefillerOptions {
  store: KeyPoolStore;
  custody: KeyCustody;
  /** The kinds of key to keep ready (one per algorithm the chains use). */
  kinds: readonly PoolKind[];
  /** Unassigned keys to keep per kind. */
  target: number;
  /**
   * Fleet-wide limit on the keys the refillers create (Redis, shared by replicas): Cloud KMS write
   * quotas are per minute and per project, and synchronous creates need their share too.
   */
  limiter: RateLimiter;
  /** Pause between passes when nothing asked for one sooner. */
  intervalMs: number;
  /** Keys created at once within a pass. */
  concurrency: number;
  metrics: KeyPoolMetrics;
  logger: Logger;
}

/** Labels of a pooled key in Cloud KMS: set at creation, never changed when the key is assigned. */
const poolKeyLabels = (kind: PoolKind): Record<string, string> => ({
  'wallet-fleet-pool': `${kind.algorithm}-${kind.protectionLevel.toLowerCase()}`,
});

const labelsOf = (kind: PoolKind) => ({ algorithm: kind.algorithm, protection_level: kind.protectionLevel });

/**
 * Keeps `target` unassigned keys of each kind in the pool. One replica refills at a time (advisory
 * lock); each key created takes a slot of the fleet-wide limiter first, and a denied slot ends the
 * pass until the window frees one. A key is created in KMS before it is recorded: a crash between
 * the two leaves an unrecorded key (`pool-…`, unused, harmless), never a row without a key.
 * `wake()` asks for a pass soon (after a create took a key); passes never overlap.
 */
export function createKeyPoolRefiller(opts: RefillerOptions): Component & { runOnce(): Promise<number>; wake(): void } {
  const log = opts.logger.child({ component: 'key-pool' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let started = false;
  let stopping = false;
  // Until when the limiter said no: wakes before then would only be denied again.
  let limitedUntil = 0;

  async function fill(kind: PoolKind): Promise<{ created: number; limitedForMs?: number }> {
    const available = await opts.store.countUnassigned(kind);
    opts.metrics.available.set(labelsOf(kind), available);
    let missing = opts.target - available;
    let created = 0;
    let limitedForMs: number | undefined;
    let failure: unknown;
    const worker = async () => {
      while (missing > 0 && limitedForMs === undefined && failure === undefined && !stopping) {
        missing--;
        try {
          const slot = await opts.limiter.take('create-key');
          if (!slot.allowed) {
            limitedForMs = slot.resetMs;
            return;
          }
          const key = await opts.custody.createKey(`pool-${randomUUID()}`, kind.algorithm, { labels: poolKeyLabels(kind) });
          await opts.store.add(kind, key);
          created++;
          opts.metrics.created.inc(labelsOf(kind));
          opts.metrics.available.inc(labelsOf(kind));
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, Math.max(0, missing)) }, worker));
    if (failure !== undefined) throw failure;
    return { created, ...(limitedForMs === undefined ? {} : { limitedForMs }) };
  }

  // Each pass starts with the next kind: a pass ends at the first rate-limit refusal, and a fixed
  // order would leave the later kinds' pools empty whenever the first kind uses up the quota.
  let first = 0;
  async function pass(): Promise<number> {
    const result = await opts.store.withRefillLock(async () => {
      let total = 0;
      const order = [...opts.kinds.slice(first), ...opts.kinds.slice(0, first)];
      first = (first + 1) % Math.max(1, opts.kinds.length);
      for (const kind of order) {
        const { created, limitedForMs } = await fill(kind);
        total += created;
        if (limitedForMs !== undefined) {
          limitedUntil = Date.now() + limitedForMs;
          break;
        }
      }
      return total;
    });
    if (result) log.debug({ created: result }, 'key pool refilled');
    return result ?? 0;
  }

  const runOnce = () => {
    running ??= pass().finally(() => (running = undefined));
    return running;
  };

  function schedule(delayMs: number) {
    if (!started || stopping) return;
    clearTimeout(timer);
    timer = setTimeout(tick, delayMs);
  }

  function tick() {
    runOnce()
      .catch((err) => log.warn({ err }, 'key pool refill failed; next pass later'))
      .finally(() => {
        // Limited: the next pass when the window frees a slot, unless the usual pause is shorter.
        const untilSlot = limitedUntil - Date.now();
        schedule(untilSlot > 0 ? Math.min(opts.intervalMs, untilSlot + 10) : opts.intervalMs);
      });
  }

  return {
    name: 'key-pool',
    runOnce,
    wake() {
      // A pass in flight or a limited window: the scheduled pass comes soon enough.
      if (!started || stopping || running || Date.now() < limitedUntil) return;
      schedule(0);
    },
    async start() {
      started = true;
      schedule(0);
    },
    async stop() {
      stopping = true;
      clearTimeout(timer);
      timer = undefined;
      await running?.catch(() => undefined);
    },
  };
}
