import { ErrorCode, FleetError, type PolicyRules, type PolicyScopeRef } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { DailyCap, Denial, Scope, ScopedRules } from '../policy/engine.js';
import type { OutboxWriter } from '../ports.js';

export interface PolicyRecord {
  scope: Scope;
  id: string | null;
  rules: PolicyRules;
  version: number;
  updatedAt: string | null;
}

const FLEET = 'fleet:';
const NONE = Symbol('no policy');

/** The scopes among `keys` that have rules, as the engine takes them (broadest first). */
function present(keys: readonly string[], rules: ReadonlyArray<PolicyRules | typeof NONE | undefined>): ScopedRules[] {
  const out: ScopedRules[] = [];
  for (const [i, key] of keys.entries()) {
    const r = rules[i];
    if (r === undefined || r === NONE) continue;
    const [scope, ...rest] = key.split(':') as [Scope, ...string[]];
    out.push({ scope, id: scope === 'fleet' ? null : rest.join(':'), rules: r });
  }
  return out;
}

const scopeId = (ref: PolicyScopeRef): string => (ref.scope === 'fleet' ? '' : ref.scope === 'user' ? ref.userId : ref.walletId);

interface Row {
  scope: Scope;
  scope_id: string;
  rules: PolicyRules;
  version: number;
  updated_at: Date;
}

const toRecord = (r: Row): PolicyRecord => ({
  scope: r.scope,
  id: r.scope === 'fleet' ? null : r.scope_id,
  rules: r.rules,
  version: r.version,
  updatedAt: r.updated_at.toISOString(),
});

export type PolicyStore = ReturnType<typeof createPolicyStore>;

/**
 * Policies and the spend that rolling caps count. Every method throws FleetError `UNAVAILABLE`
 * (retryable) or `INTERNAL` for a database failure.
 */
export function createPolicyStore(pool: pg.Pool, outbox: Pick<OutboxWriter, 'enqueue'>, opts: { cacheSize?: number } = {}) {
  // Rules per scope key as read at `cacheEpoch` (NONE: the scope has no policy), least recently
  // used dropped first; every entry is of the one epoch.
  const cache = new LRUCache<string, PolicyRules | typeof NONE>({ max: opts.cacheSize ?? 10_000 });
  let cacheEpoch = 0;
  const forget = () => {
    cache.clear();
    cacheEpoch = 0;
  };
  return {
    /** The policy of one scope; version 0 and empty rules for a scope never set. */
    get: (ref: PolicyScopeRef): Promise<PolicyRecord> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<Row>('SELECT scope, scope_id, rules, version, updated_at FROM policies WHERE scope = $1 AND scope_id = $2', [
          ref.scope,
          scopeId(ref),
        ]);
        return rows[0] ? toRecord(rows[0]) : { scope: ref.scope, id: ref.scope === 'fleet' ? null : scopeId(ref), rules: {}, version: 0, updatedAt: null };
      }),

    /**
     * Replaces the rules of one scope, with the messages `messagesFor(before, after)` written in the
     * same transaction (changes of one scope run one after another, so `before` is exact).
     * Throws WALLET_NOT_FOUND for the scope of a wallet that does not exist.
     */
    set: (ref: PolicyScopeRef, rules: PolicyRules, messagesFor: (before: PolicyRecord, after: PolicyRecord) => OutboxMessage[]): Promise<PolicyRecord> =>
      withDatabaseErrors(() =>
        // The change moves the epoch (the migration's trigger); this replica also forgets at once
        // what it kept (the others learn it from their next reservation).
        inTransaction(pool, async (client) => {
          const id = scopeId(ref);
          if (ref.scope === 'wallet') {
            const { rowCount } = await client.query('SELECT 1 FROM wallets WHERE wallet_id = $1', [id]);
            if (!rowCount) throw new FleetError(ErrorCode.WALLET_NOT_FOUND, 'wallet not found');
          }
          await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`policy:${ref.scope}:${id}`]);
          const { rows: old } = await client.query<Row>('SELECT scope, scope_id, rules, version, updated_at FROM policies WHERE scope = $1 AND scope_id = $2', [
            ref.scope,
            id,
          ]);
          const before: PolicyRecord = old[0]
            ? toRecord(old[0])
            : { scope: ref.scope, id: ref.scope === 'fleet' ? null : id, rules: {}, version: 0, updatedAt: null };
          const { rows } = await client.query<Row>(
            `INSERT INTO policies (scope, scope_id, rules, version) VALUES ($1, $2, $3, 1)
             ON CONFLICT (scope, scope_id) DO UPDATE SET rules = EXCLUDED.rules, version = policies.version + 1, updated_at = now()
             RETURNING scope, scope_id, rules, version, updated_at`,
            [ref.scope, id, JSON.stringify(rules)],
          );
          const after = toRecord(rows[0]!);
          await outbox.enqueue(client, messagesFor(before, after));
          return after;
        }).finally(forget),
      ),

    /**
     * The rules of the fleet, the wallet's user and the wallet, broadest first, and the epoch they
     * were read at (pass it to `reserve` and `isCurrent`). Served from memory once read: a change of
     * any policy moves the epoch (a trigger), and `reserve` answers `stale` for rules of an older
     * epoch, so a decision is never taken on rules older than a committed change.
     */
    applicable: async (userId: string, walletId: string): Promise<{ epoch: number; policies: ScopedRules[] }> => {
      const keys = [FLEET, `user:${userId}`, `wallet:${walletId}`];
      const known = keys.map((k) => cache.get(k));
      if (known.every((r) => r !== undefined)) return { epoch: cacheEpoch, policies: present(keys, known) };
      const { rows } = await withDatabaseErrors(() =>
        pool.query<Row & { epoch: string }>({
          name: 'policy-applicable',
          text: `SELECT e.epoch, p.scope, p.scope_id, p.rules FROM policy_epoch e
                   LEFT JOIN policies p ON (p.scope = 'fleet' AND p.scope_id = '') OR (p.scope = 'user' AND p.scope_id = $1) OR (p.scope = 'wallet' AND p.scope_id = $2)`,
          values: [userId, walletId],
        }),
      );
      const epoch = Number(rows[0]!.epoch);
      const found = new Map(rows.filter((r) => r.scope !== null).map((r) => [r.scope === 'fleet' ? FLEET : `${r.scope}:${r.scope_id}`, r.rules]));
      const read = keys.map((k) => found.get(k) ?? NONE);
      // One epoch in the cache at a time: rules read at a newer epoch replace everything; rules
      // read at an older one (a read that raced a change) serve only this call, whose `reserve` will
      // then answer stale.
      if (epoch > cacheEpoch) {
        cache.clear();
        cacheEpoch = epoch;
      }
      if (epoch === cacheEpoch) {
        for (const [i, k] of keys.entries()) cache.set(k, read[i]!);
      }
      return { epoch, policies: present(keys, read) };
    },

    /** Whether `epoch` is still the current one (a decision that refuses checks it instead of reserving). */
    isCurrent: (epoch: number): Promise<boolean> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ epoch: string }>({ name: 'policy-epoch', text: 'SELECT epoch FROM policy_epoch' });
        return Number(rows[0]!.epoch) === epoch;
      }),

    /** Drops what `applicable` keeps in memory (after a change, or an answer that it was stale). */
    forget,

    /**
     * Records what the signing `ref` may move and checks the rolling caps, atomically and in one
     * round trip (the migration's `policy_reserve`): the spend of one user and asset is counted
     * under an advisory lock, from running totals, so concurrent signings cannot together pass a
     * cap, and a check costs the same on a wallet's thousandth signing of the day as on its first.
     * A `ref` already reserved (a retry of the same idempotent transfer) is not counted twice.
     * Returns the denial of the first cap it would break (nothing is recorded then), or `stale`
     * (nothing done) when the rules were read at an epoch older than the current one. `dryRun`
     * checks and records nothing (a request that waits for approval).
     */
    reserve: (
      epoch: number,
      ref: string,
      owner: { userId: string; walletId: string },
      spend: ReadonlyMap<string, bigint>,
      caps: readonly DailyCap[],
      opts: { dryRun?: boolean } = {},
    ): Promise<Denial | 'stale' | undefined> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<{ outcome: 'ok' | 'held' | 'stale' | 'denied'; cap: number | null; used: string | null }>({
          name: 'policy-reserve',
          text: 'SELECT outcome, cap, used::text AS used FROM policy_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
          values: [
            epoch,
            ref,
            owner.userId,
            owner.walletId,
            [...spend.keys()],
            [...spend.values()].map(String),
            caps.map((c) => c.rule === 'dailyPerWallet'),
            caps.map((c) => c.asset),
            caps.map((c) => c.limit.toString()),
            opts.dryRun === true,
          ],
        });
        const { outcome, cap: index, used } = rows[0]!;
        if (outcome === 'stale') return 'stale';
        if (outcome !== 'denied') return undefined;
        const cap = caps[index! - 1]!;
        const amount = spend.get(cap.asset) ?? 0n;
        const total = BigInt(used!) + amount;
        return {
          rule: cap.rule,
          message: `${amount} ${cap.asset} (fees included) would bring the last 24 h to ${total}, above the ${cap.scope} cap of ${cap.limit}`,
          scope: cap.scope,
          scopeId: cap.scopeId,
          asset: cap.asset,
          limit: cap.limit.toString(),
          amount: amount.toString(),
          used: used!,
        } satisfies Denial;
      }),

    /** Gives back what `ref` reserved: only for a signing that provably never reached the chain. */
    release: (ref: string): Promise<void> =>
      withDatabaseErrors(async () => {
        await pool.query({ name: 'policy-release', text: 'SELECT policy_release($1)', values: [ref] });
      }),

    /**
     * Deletes the spend that can never count again (older than 25 h; see `policy_prune_spend`),
     * `batch` rows per statement (each its own short transaction) until none is left. Returns the
     * rows deleted and the running totals dropped (to be summed again by their next check).
     */
    pruneSpend: (batch = 10_000): Promise<{ rows: number; totals: number }> =>
      withDatabaseErrors(async () => {
        const pruned = { rows: 0, totals: 0 };
        for (;;) {
          const { rows } = await pool.query<{ deleted_rows: string; dropped_totals: string }>(
            'SELECT deleted_rows, dropped_totals FROM policy_prune_spend($1)',
            [batch],
          );
          const deleted = Number(rows[0]!.deleted_rows);
          pruned.rows += deleted;
          pruned.totals += Number(rows[0]!.dropped_totals);
          if (deleted < batch) return pruned;
        }
      }),
  };
}
