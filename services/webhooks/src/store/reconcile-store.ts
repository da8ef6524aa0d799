import type { Chain, DepositStatus } from '@wallet-fleet/contracts';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
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

/**
 * Pending deposits accepted at least `olderThanSeconds` ago, and rejected ones whose address has
 * become ours, oldest first (the partial indexes `deposits_pending`, `deposits_rejected`).
 * Throws VALIDATION_FAILED (bad cursor), UNAVAILABLE.
 */
async function listStuck(
  pool: pg.Pool,
  q: { olderThanSeconds: number; limit: number; after?: string | undefined },
): Promise<{ deposits: StuckDeposit[]; next?: string }> {
  const after = q.after ? decodeCursor(q.after) : undefined;
  try {
    const { rows } = await pool.query<{ deposit_id: string; chain: Chain; tx_hash: string; created_at: string; n: number }>(
      `SELECT deposit_id, chain, tx_hash, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
              jsonb_array_length(attempts) AS n
         FROM deposits
        WHERE created_at <= now() - make_interval(secs => $1)
          AND (status = 'pending' OR (${REJECTED_BUT_NOW_OURS}))
          AND ($2::timestamptz IS NULL OR (created_at, deposit_id) > ($2::timestamptz, $3::uuid))
        ORDER BY created_at, deposit_id
        LIMIT $4`,
      [q.olderThanSeconds, after?.[0] ?? null, after?.[1] ?? null, q.limit + 1],
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

export interface DepositsSummary {
  byStatus: Record<DepositStatus, number>;
  oldestPendingAt: string | null;
  drift: { creditedWithoutLedgerEntry: number; ledgerEntryWithoutCredit: number; ledgerAmountMismatch: number };
}

/**
 * Counts by status and the drift between deposits and the ledger that should never exist: a
 * credited deposit without its entry, an entry whose deposit is not credited, an entry whose
 * amount, token or chain differs from its deposit. Throws UNAVAILABLE.
 */
async function summary(pool: pg.Pool): Promise<DepositsSummary> {
  try {
    const [counts, drift] = await Promise.all([
      pool.query<{ status: DepositStatus; n: string; oldest: string | null }>(
        `SELECT status, count(*) AS n,
                to_char(min(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS oldest
           FROM deposits GROUP BY status`,
      ),
      pool.query<{ a: string; b: string; c: string }>(
        `SELECT
           (SELECT count(*) FROM deposits d WHERE d.status = 'credited'
              AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.deposit_id = d.deposit_id)) AS a,
           (SELECT count(*) FROM ledger l JOIN deposits d USING (deposit_id) WHERE d.status <> 'credited') AS b,
           (SELECT count(*) FROM ledger l JOIN deposits d USING (deposit_id)
             WHERE l.amount <> d.amount OR l.token <> d.token OR l.chain <> d.chain) AS c`,
      ),
    ]);
    const byStatus: Record<DepositStatus, number> = { pending: 0, credited: 0, failed: 0, rejected: 0 };
    let oldestPendingAt: string | null = null;
    for (const r of counts.rows) {
      byStatus[r.status] = Number(r.n);
      if (r.status === 'pending') oldestPendingAt = r.oldest;
    }
    const d = drift.rows[0]!;
    return {
      byStatus,
      oldestPendingAt,
      drift: { creditedWithoutLedgerEntry: Number(d.a), ledgerEntryWithoutCredit: Number(d.b), ledgerAmountMismatch: Number(d.c) },
    };
  } catch (e) {
    throw databaseError(e);
  }
}

export type ReconcileStore = ReturnType<typeof createReconcileStore>;

/** The queries of reconciliation over this service's deposits; each translates its database errors. */
export function createReconcileStore(pool: pg.Pool) {
  return {
    listStuck: (q: { olderThanSeconds: number; limit: number; after?: string | undefined }) => listStuck(pool, q),
    reopenIfNowOurs: (depositId: string) => reopenIfNowOurs(pool, depositId),
    depositAgeSeconds: (depositId: string) => depositAgeSeconds(pool, depositId),
    summary: () => summary(pool),
  };
}
