/**
 * In-process waiting rooms: a semaphore of `size` holders and a mutex per key, each waiter served
 * in arrival order and waiting at most `waitMs` (then `timedOut()` is thrown). They put the
 * callers of one process in line before any of them touches the database, so a PostgreSQL lock is
 * only ever waited for by one connection per process and key.
 */
interface LocalGate {
  /** Resolves with the release function (idempotent) once the caller holds a place. */
  acquire(waitMs: number, timedOut: () => Error): Promise<() => void>;
}

interface Semaphore extends LocalGate {
  idle(): boolean;
}

export function createSemaphore(size: number): Semaphore {
  let free = size;
  const waiters: Array<() => void> = [];
  const releaser = () => {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = waiters.shift();
      if (next) next();
      else free++;
    };
  };
  return {
    idle: () => free === size && waiters.length === 0,
    acquire(waitMs, timedOut) {
      if (free > 0) {
        free--;
        return Promise.resolve(releaser());
      }
      return new Promise((resolve, reject) => {
        const grant = () => {
          clearTimeout(timer);
          resolve(releaser());
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(grant), 1);
          reject(timedOut());
        }, waitMs);
        waiters.push(grant);
      });
    },
  };
}

/** One mutex per key; a key's entry is dropped once nobody holds or waits for it. */
export function createKeyedMutex(): { acquire(key: string, waitMs: number, timedOut: () => Error): Promise<() => void> } {
  const mutexes = new Map<string, Semaphore>();
  return {
    async acquire(key, waitMs, timedOut) {
      let m = mutexes.get(key);
      if (!m) {
        m = createSemaphore(1);
        mutexes.set(key, m);
      }
      const mutex = m;
      const drop = () => {
        if (mutex.idle() && mutexes.get(key) === mutex) mutexes.delete(key);
      };
      let release: () => void;
      try {
        release = await mutex.acquire(waitMs, timedOut);
      } catch (e) {
        drop();
        throw e;
      }
      return () => {
        release();
        drop();
      };
    },
  };
}
