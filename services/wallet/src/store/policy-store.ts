import { ErrorCode, FleetError, type PolicyRules, type PolicyScopeRef } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
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
export function createPolicyStore(pool: pg.Pool, outbox: Pick<OutboxWriter, 'enqueue'>) {
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
        }),
      ),

    /** The rules of the fleet, the wallet's user and the wallet, broadest first. */
    applicable: (userId: string, walletId: string): Promise<ScopedRules[]> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<Row>(
          `SELECT scope, scope_id, rules, version, updated_at FROM policies
            WHERE (scope = 'fleet' AND scope_id = '') OR (scope = 'user' AND scope_id = $1) OR (scope = 'wallet' AND scope_id = $2)
            ORDER BY array_position(ARRAY['fleet', 'user', 'wallet'], scope)`,
          [userId, walletId],
        );
        return rows.map((r) => ({ scope: r.scope, id: r.scope === 'fleet' ? null : r.scope_id, rules: r.rules }));
      }),

    /**
     * Records what the signing `ref` may move and checks the rolling caps, atomically: the spend of
     * one user and asset is counted under an advisory lock, so concurrent signings cannot together
     * pass a cap. A `ref` already reserved (a retry of the same idempotent transfer) is not counted
     * twice. Returns the denial of the first cap it would break (nothing is recorded then).
     * `dryRun` checks the caps and records nothing (a request that waits for approval).
     */
    reserve: (
      ref: string,
      owner: { userId: string; walletId: string },
      spend: ReadonlyMap<string, bigint>,
      caps: readonly DailyCap[],
      opts: { dryRun?: boolean } = {},
    ): Promise<Denial | undefined> =>
      withDatabaseErrors(async () => {
        const assets = [...spend.keys()];
        const amounts = assets.map((a) => spend.get(a)!.toString());
        if (caps.length === 0) {
          // Nothing to check and, in a dry run, nothing to record.
          if (opts.dryRun) return undefined;
          // No cap counts this spend, so nothing needs a lock or a sum: a ref never reserved (every
          // raw signing's, a transfer's first) is recorded by one statement, one commit, instead of
          // a transaction of four round trips. The NOT EXISTS is evaluated once for the statement:
          // it inserts every asset or none, and none means the ref was seen before (full path).
          const { rowCount } = await pool.query({
            name: 'policy-spend-fresh',
            text: `INSERT INTO policy_spend (ref, asset, user_id, wallet_id, amount)
                   SELECT $1, a, $2, $3, m::numeric FROM unnest($4::text[], $5::text[]) AS t(a, m)
                    WHERE NOT EXISTS (SELECT 1 FROM policy_spend WHERE ref = $1)`,
            values: [ref, owner.userId, owner.walletId, assets, amounts],
          });
          if (rowCount === assets.length) return undefined;
        }
        return inTransaction(pool, async (client) => {
          if (!opts.dryRun) {
            const { rows: held } = await client.query<{ released: boolean }>('SELECT released_at IS NOT NULL AS released FROM policy_spend WHERE ref = $1', [
              ref,
            ]);
            if (held.length > 0 && held.every((h) => !h.released)) return undefined;
            if (held.length > 0) await client.query('DELETE FROM policy_spend WHERE ref = $1', [ref]);
          }
          // Locks in a fixed order (sorted assets): two signings over the same assets cannot deadlock.
          const capped = [...new Set(caps.map((c) => c.asset))].sort();
          for (const asset of capped) {
            await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`policy-spend:${owner.userId}:${asset}`]);
          }
          for (const cap of caps) {
            const column = cap.rule === 'dailyPerWallet' ? 'wallet_id::text' : 'user_id';
            const who = cap.rule === 'dailyPerWallet' ? owner.walletId : owner.userId;
            const { rows } = await client.query<{ used: string }>(
              `SELECT coalesce(sum(amount), 0)::text AS used FROM policy_spend
                WHERE ${column} = $1 AND asset = $2 AND released_at IS NULL AND created_at > now() - interval '24 hours'`,
              [who, cap.asset],
            );
            const used = BigInt(rows[0]!.used);
            const amount = spend.get(cap.asset) ?? 0n;
            if (used + amount > cap.limit) {
              return {
                rule: cap.rule,
                message: `${amount} ${cap.asset} (fees included) would bring the last 24 h to ${used + amount}, above the ${cap.scope} cap of ${cap.limit}`,
                scope: cap.scope,
                scopeId: cap.scopeId,
                asset: cap.asset,
                limit: cap.limit.toString(),
                amount: amount.toString(),
                used: used.toString(),
              } satisfies Denial;
            }
          }
          if (opts.dryRun) return undefined;
          await client.query(
            `INSERT INTO policy_spend (ref, asset, user_id, wallet_id, amount)
             SELECT $1, a, $2, $3, m::numeric FROM unnest($4::text[], $5::text[]) AS t(a, m)`,
            [ref, owner.userId, owner.walletId, assets, amounts],
          );
          return undefined;
        });
      }),

    /** Gives back what `ref` reserved: only for a signing that provably never reached the chain. */
    release: (ref: string): Promise<void> =>
      withDatabaseErrors(async () => {
        await pool.query('UPDATE policy_spend SET released_at = now() WHERE ref = $1 AND released_at IS NULL', [ref]);
      }),
  };
}
