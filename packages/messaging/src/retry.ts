import { cleanMessage } from '@wallet-fleet/contracts';

/** How an event queue retries a retryable failure (through broker-side delay queues). */
export interface RetryPolicy {
  /** Total attempts including the first delivery (1 = never retry). */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /** Growth per attempt, default 2. */
  factor?: number;
  /** Fraction of the delay randomly added or removed (0..1), default 0.2. */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (1 = the delay after the first failure):
 * `initialDelayMs * factor^(attempt-1)`, spread by ±`jitter` and capped at `maxDelayMs`.
 * Pure; `random` is injectable for tests. Throws RangeError on a bad attempt or policy.
 */
export function computeRetryDelay(
  attempt: number,
  policy: Pick<RetryPolicy, 'initialDelayMs' | 'maxDelayMs' | 'factor' | 'jitter'>,
  random: () => number = Math.random,
): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new RangeError(`attempt must be an integer >= 1, got ${attempt}`);
  const factor = policy.factor ?? 2;
  const jitter = policy.jitter ?? 0.2;
  if (!(policy.initialDelayMs >= 0) || !(policy.maxDelayMs >= 0) || !(factor >= 1) || !(jitter >= 0 && jitter <= 1)) {
    throw new RangeError('retry policy needs initialDelayMs >= 0, maxDelayMs >= 0, factor >= 1, 0 <= jitter <= 1');
  }
  // Cap before and after the spread: factor^attempt overflows to Infinity long before attempt
  // numbers get silly, and the spread must not push a capped delay past the cap.
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * factor ** (attempt - 1));
  const spread = 1 - jitter + 2 * jitter * random();
  return Math.max(0, Math.round(Math.min(policy.maxDelayMs, base * spread)));
}

export interface ErrorHistoryEntry {
  attempt: number;
  code: string;
  message: string;
  at: string;
}

/** Entries kept in `x-error-history`: headers are size-limited (64 KiB per table in amqplib). */
const MAX_HISTORY = 10;

/** Reads `x-error-history` leniently (a foreign or corrupt header is treated as empty). */
function parseHistory(raw: unknown): ErrorHistoryEntry[] {
  try {
    const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
    if (typeof text !== 'string') return [];
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? (parsed.filter((e) => e && typeof e === 'object') as ErrorHistoryEntry[]) : [];
  } catch {
    return [];
  }
}

/** The history with one entry appended, oldest dropped beyond MAX_HISTORY, as a header value. */
export function appendHistory(raw: unknown, entry: ErrorHistoryEntry): string {
  const all = [...parseHistory(raw), { ...entry, message: cleanMessage(entry.message) }];
  return JSON.stringify(all.slice(-MAX_HISTORY));
}
