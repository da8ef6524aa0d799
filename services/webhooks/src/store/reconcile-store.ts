import { type Chain, DepositStatus, type DepositsSummary as DepositsSummarySchema, ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { z } from 'zod';
import { databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';

export interface StuckDeposit {
  depositId: string;
  chain: Chain;
  txHash: string;
  acceptedAt: string;
  attempts: number;
}

/**
 * A deposit rejected because its address was no wallet of ours, whose address has become one since:
 * the deposit arrived before the `wallet.created` event (a lagging wallets queue). Re-opened by
 * `wallet.deposits.reconcile`, never lost.
 */
const REJECTED_BUT_NOW_OURS = `status = 'rejected'
  AND attempts -> -1 ->> 'errorCode' = 'WALLET_NOT_FOUND'
  AND EXISTS (SELECT 1 FROM known_addresses k WHERE k.chain = deposits.chain
              AND k.address = CASE WHEN deposits.chain IN ('ETH', 'APTOS') THEN lower(deposits.to_address) ELSE deposits.to_address END)`;

/** Keyset cursor over (created_at, deposit_id): stable while rows leave `pending` between pages. */
const encodeCursor = (createdAt: string, id: string) => Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');
function decodeCursor(cursor: string): [string, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' && !Number.isNaN(Date.parse(v[0]))) {
      return [v[0], v[1]];
    }
  } catch {
    // fall through
  }
  throw FleetError.validation([{ path: 'after', message: 'not a cursor returned by wallet.deposits.stuck' }]);
}

/** Open work: pending or confirming deposits accepted at least $1 seconds ago, rejected ones whose address became ours. */
const OPEN_WORK = `(created_at <= now() - make_interval(secs => $1) AND (status IN ('pending', 'confirming') OR (${REJECTED_BUT_NOW_OURS})))`;
/**
 * Re-checks within the window ($5 seconds): credits on chains whose finality is N confirmations ($6),
 * and reversals whose claim has no deposit open or settled since (mined again?).
 */
const RECHECKS = `(updated_at > now() - make_interval(secs => $5)
  AND ((status = 'credited' AND chain = ANY ($6::text[]))
       OR (status = 'reversed' AND NOT EXISTS (
             SELECT 1 FROM deposits n WHERE n.status <> 'reversed' AND n.chain = deposits.chain AND n.tx_hash = deposits.tx_hash
               AND n.event_index = deposits.event_index AND n.token = deposits.token AND n.amount = deposits.amount
               AND n.to_address = deposits.to_address))))`;

/**
 * `kind` open: pending or confirming deposits accepted at least `olderThanSeconds` ago, rejected ones
 * whose address has become ours; `kind` credits: deposits credited less than `recheckWindowSeconds`
 * ago on `recheckChains` and recent reversals, to be checked on chain again; both without `kind`.
 * Oldest first (the partial indexes `deposits_open`, `deposits_rejected`, `deposits_credited`,
 * `deposits_reversed`). Throws VALIDATION_FAILED (bad cursor), UNAVAILABLE.
 */
async function listStuck(
  pool: pg.Pool,
  opts: { recheckWindowSeconds: number; recheckChains: readonly Chain[] },
  q: { olderThanSeconds: number; limit: number; after?: string | undefined; kind?: 'open' | 'credits' | undefined },
): Promise<{ deposits: StuckDeposit[]; next?: string }> {
  const after = q.after ? decodeCursor(q.after) : undefined;
  try {
    const { rows } = await pool.query<{ deposit_id: string; chain: Chain; tx_hash: string; created_at: string; n: number }>(
      `SELECT deposit_id, chain, tx_hash, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
              jsonb_array_length(attempts) AS n
         FROM deposits
        WHERE (($7::text IS DISTINCT FROM 'credits' AND ${OPEN_WORK}) OR ($7::text IS DISTINCT FROM 'open' AND ${RECHECKS}))
          AND ($2::timestamptz IS NULL OR (created_at, deposit_id) > ($2::timestamptz, $3::uuid))
        ORDER BY created_at, deposit_id
        LIMIT $4`,
      [q.olderThanSeconds, after?.[0] ?? null, after?.[1] ?? null, q.limit + 1, opts.recheckWindowSeconds, opts.recheckChains, q.kind ?? null],
    );
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    return {
      deposits: page.map((r) => ({ depositId: r.deposit_id, chain: r.chain, txHash: r.tx_hash, acceptedAt: r.created_at, attempts: r.n })),
      ...(rows.length > q.limit && last ? { next: encodeCursor(last.created_at, last.deposit_id) } : {}),
    };
  } catch (e) {
    if (e instanceof FleetError) throw e;
    // A malformed uuid in a hand-made cursor.
    if ((e as { code?: string }).code === '22P02') throw FleetError.validation([{ path: 'after', message: 'not a cursor returned by wallet.deposits.stuck' }]);
    throw databaseError(e);
  }
}

/**
 * Moves a deposit rejected for an unknown address back to pending once the address is ours, with
 * an entry in its attempt log, in one statement (nothing happens when the condition no longer
 * holds). Returns whether it was re-opened. Throws UNAVAILABLE.
 */
async function reopenIfNowOurs(pool: pg.Pool, depositId: string): Promise<boolean> {
  const entry = { attempt: 0, status: 'retry', message: 'the address is now a wallet of ours: re-opened', at: new Date().toISOString(), by: 'reconciliation' };
  try {
    const { rowCount } = await pool.query(
      `UPDATE deposits SET status = 'pending', attempts = attempts || $2::jsonb, updated_at = now()
        WHERE deposit_id = $1 AND ${REJECTED_BUT_NOW_OURS}`,
      [depositId, JSON.stringify([entry])],
    );
    return (rowCount ?? 0) > 0;
  } catch (e) {
    throw databaseError(e);
  }
}

/** Seconds since the deposit was accepted. Throws NOT_FOUND, UNAVAILABLE. */
async function depositAgeSeconds(pool: pg.Pool, depositId: string): Promise<number> {
  let rows: Array<{ age: number }>;
  try {
    ({ rows } = await pool.query<{ age: number }>(`SELECT extract(epoch FROM now() - created_at)::float8 AS age FROM deposits WHERE deposit_id = $1`, [
      depositId,
    ]));
  } catch (e) {
    throw databaseError(e);
  }
  if (!rows[0]) throw FleetError.nonRetryable(ErrorCode.NOT_FOUND, 'no such deposit');
  return rows[0].age;
}

export type DepositsSummary = z.infer<typeof DepositsSummarySchema>;
type Drift = DepositsSummary['drift'];

/**
 * Counts by status, the ledger per asset (credits, reversals, balance), and the drift between
 * deposits and the ledger that should never exist, in all and per asset: a credited (or reversed)
 * deposit without its credit, a credit whose deposit is neither credited nor reversed or a reversal
 * whose deposit is not reversed, an entry whose amount (a reversal: minus it), token, chain or asset
 * differs from its deposit, a reversed deposit without its compensating entry. Throws UNAVAILABLE.
 */
async function summary(pool: pg.Pool): Promise<DepositsSummary> {
  try {
    const [counts, assets] = await Promise.all([
      pool.query<{ status: DepositStatus; n: string; oldest: string | null }>(
        `SELECT status, count(*) AS n,
                to_char(min(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS oldest
           FROM deposits GROUP BY status`,
      ),
      pool.query<{
        chain: Chain;
        asset: string;
        decimals: number | null;
        credits: string;
        credited: string;
        reversals: string;
        reversed: string;
        balance: string;
        a: string;
        b: string;
        c: string;
        r: string;
      }>(
        `WITH e AS (
           SELECT d.chain, coalesce(c.asset, d.asset, d.token) AS asset, coalesce(c.decimals, d.decimals) AS decimals, d.status, d.amount,
                  d.token, d.asset AS d_asset, c.entry_id AS cid, c.amount AS credit, c.token AS c_token, c.chain AS c_chain, c.asset AS c_asset,
                  r.entry_id AS rid, r.amount AS reversal, r.token AS r_token, r.chain AS r_chain
             FROM deposits d
             LEFT JOIN ledger c ON c.deposit_id = d.deposit_id AND c.kind = 'credit'
             LEFT JOIN ledger r ON r.deposit_id = d.deposit_id AND r.kind = 'reversal'
            WHERE d.status IN ('credited', 'reversed') OR c.entry_id IS NOT NULL OR r.entry_id IS NOT NULL)
         SELECT chain, asset, max(decimals) AS decimals,
                count(cid) AS credits, coalesce(sum(credit), 0)::text AS credited,
                count(rid) AS reversals, coalesce(-sum(reversal), 0)::text AS reversed,
                (coalesce(sum(credit), 0) + coalesce(sum(reversal), 0))::text AS balance,
                count(*) FILTER (WHERE status IN ('credited', 'reversed') AND cid IS NULL) AS a,
                count(*) FILTER (WHERE (cid IS NOT NULL AND status NOT IN ('credited', 'reversed')) OR (rid IS NOT NULL AND status <> 'reversed')) AS b,
                count(*) FILTER (WHERE credit <> amount OR c_token <> token OR c_chain <> chain OR (cid IS NOT NULL AND c_asset IS DISTINCT FROM d_asset)
                                    OR reversal <> -amount OR r_token <> token OR r_chain <> chain) AS c,
                count(*) FILTER (WHERE status = 'reversed' AND rid IS NULL) AS r
           FROM e GROUP BY chain, asset ORDER BY chain, asset`,
      ),
    ]);
    const byStatus = Object.fromEntries(DepositStatus.options.map((s) => [s, 0])) as Record<DepositStatus, number>;
    let oldestPendingAt: string | null = null;
    for (const r of counts.rows) {
      byStatus[r.status] = Number(r.n);
      if (r.status === 'pending') oldestPendingAt = r.oldest;
    }
    const drift: Drift = { creditedWithoutLedgerEntry: 0, ledgerEntryWithoutCredit: 0, ledgerAmountMismatch: 0, reversedWithoutCompensation: 0 };
    const perAsset = assets.rows.map((r) => {
      const d: Drift = {
        creditedWithoutLedgerEntry: Number(r.a),
        ledgerEntryWithoutCredit: Number(r.b),
        ledgerAmountMismatch: Number(r.c),
        reversedWithoutCompensation: Number(r.r),
      };
      for (const k of Object.keys(drift) as Array<keyof Drift>) drift[k] += d[k];
      return {
        chain: r.chain,
        asset: r.asset,
        decimals: r.decimals,
        credits: Number(r.credits),
        credited: r.credited,
        reversals: Number(r.reversals),
        reversed: r.reversed,
        balance: r.balance,
        drift: d,
      };
    });
    return { byStatus, oldestPendingAt, drift, assets: perAsset };
  } catch (e) {
    throw databaseError(e);
  }
}

export type ReconcileStore = ReturnType<typeof createReconcileStore>;

/** The queries of reconciliation over this service's deposits; each translates its database errors. */
export function createReconcileStore(pool: pg.Pool, opts: { recheckWindowSeconds: number; recheckChains: readonly Chain[] }) {
  return {
    listStuck: (q: { olderThanSeconds: number; limit: number; after?: string | undefined; kind?: 'open' | 'credits' | undefined }) => listStuck(pool, opts, q),
    reopenIfNowOurs: (depositId: string) => reopenIfNowOurs(pool, depositId),
    depositAgeSeconds: (depositId: string) => depositAgeSeconds(pool, depositId),
    summary: () => summary(pool),
  };
}
