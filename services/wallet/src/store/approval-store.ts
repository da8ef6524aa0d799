import { type ApprovableOperation, type Approval, type ApprovalStatus, type Chain, ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { OutboxMessage } from '@wallet-fleet/messaging';
import { inTransaction, withDatabaseErrors } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import type { OutboxWriter } from '../ports.js';

/** A request the policy holds back, as it is kept. */
export interface NewApproval {
  approvalId: string;
  /** Names the request: a repeat with the same key finds the same approval. */
  requestKey: string;
  operation: ApprovableOperation;
  userId: string;
  walletId: string;
  chain: Chain;
  request: Record<string, unknown>;
  intent: Record<string, unknown>;
  rule: Record<string, unknown>;
  requestedBy: string;
  required: number;
  ttlMs: number;
}

interface Row {
  approval_id: string;
  operation: ApprovableOperation;
  user_id: string;
  wallet_id: string;
  chain: Chain;
  status: ApprovalStatus;
  requested_by: string;
  required: number;
  approved_by: Array<{ user: string; at: string }>;
  rejected_by: string | null;
  reject_reason: string | null;
  decided_at: Date | null;
  request: Record<string, unknown>;
  intent: Record<string, unknown>;
  rule: Record<string, unknown>;
  created_at: Date;
  expires_at: Date;
  result: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
}

// A pending request past its expiry reads as expired: nothing has to run when it expires.
const SELECT = `
  SELECT a.approval_id, a.operation, a.user_id, a.wallet_id, a.chain,
         CASE WHEN a.status = 'pending' AND a.expires_at <= now() THEN 'expired' ELSE a.status END AS status,
         a.requested_by, a.required, a.rejected_by, a.reject_reason, a.decided_at, a.request, a.intent, a.rule,
         a.created_at, a.expires_at, a.result, a.error,
         coalesce((SELECT json_agg(json_build_object('user', s.approver, 'at', s.approved_at) ORDER BY s.approved_at, s.approver)
                     FROM approval_signoffs s WHERE s.approval_id = a.approval_id), '[]'::json) AS approved_by
    FROM approvals a`;

const toApproval = (r: Row): Approval => ({
  approvalId: r.approval_id,
  operation: r.operation,
  userId: r.user_id,
  walletId: r.wallet_id,
  chain: r.chain,
  status: r.status,
  requestedBy: r.requested_by,
  required: r.required,
  approvedBy: r.approved_by.map((a) => ({ user: a.user, at: new Date(a.at).toISOString() })),
  rejectedBy:
    r.rejected_by === null
      ? null
      : { user: r.rejected_by, at: (r.decided_at ?? r.created_at).toISOString(), ...(r.reject_reason ? { reason: r.reject_reason } : {}) },
  request: r.request,
  intent: r.intent,
  rule: r.rule,
  createdAt: r.created_at.toISOString(),
  expiresAt: r.expires_at.toISOString(),
  result: r.result,
  error: r.error,
});

const notFound = () => new FleetError(ErrorCode.NOT_FOUND, 'no such approval request');
const closed = (a: Approval) =>
  new FleetError(ErrorCode.APPROVAL_CLOSED, `the approval request is ${a.status}, no longer pending`, {
    details: { approvalId: a.approvalId, status: a.status },
  });

export type ApprovalStore = ReturnType<typeof createApprovalStore>;

/**
 * Approval requests and their sign-offs. A decision (approve, reject, the outcome of the
 * execution) and the messages that tell of it (events, audit) are written in one transaction, under
 * a lock on the request's row: concurrent approvals are counted one after another. Every method
 * throws FleetError `UNAVAILABLE` (retryable) or `INTERNAL` for a database failure.
 */
export function createApprovalStore(pool: pg.Pool, outbox: OutboxWriter) {
  const read = async (client: pg.Pool | pg.ClientBase, approvalId: string, lock = false): Promise<Approval | undefined> => {
    const { rows } = await client.query<Row>(`${SELECT} WHERE a.approval_id = $1${lock ? ' FOR UPDATE OF a' : ''}`, [approvalId]);
    return rows[0] ? toApproval(rows[0]) : undefined;
  };
  /** Reads the request under its row lock, refusing an unknown or no longer pending one. */
  const pending = async (client: pg.ClientBase, approvalId: string): Promise<Approval> => {
    const a = await read(client, approvalId, true);
    if (!a) throw notFound();
    if (a.status !== 'pending' && a.status !== 'approved') throw closed(a);
    return a;
  };

  return {
    /**
     * Keeps a request (with `messagesFor(approval)` in the same transaction), or finds the one kept
     * under the same `requestKey` (then nothing is written). `created` says which.
     */
    request: (n: NewApproval, messagesFor: (a: Approval) => OutboxMessage[]): Promise<{ approval: Approval; created: boolean }> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          const { rowCount } = await client.query(
            `INSERT INTO approvals (approval_id, request_key, operation, user_id, wallet_id, chain, request, intent, rule, requested_by, required, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12::double precision / 1000))
             ON CONFLICT (request_key) DO NOTHING`,
            [
              n.approvalId,
              n.requestKey,
              n.operation,
              n.userId,
              n.walletId,
              n.chain,
              JSON.stringify(n.request),
              JSON.stringify(n.intent),
              JSON.stringify(n.rule),
              n.requestedBy,
              n.required,
              n.ttlMs,
            ],
          );
          const { rows } = await client.query<Row>(`${SELECT} WHERE a.request_key = $1`, [n.requestKey]);
          const approval = toApproval(rows[0]!);
          if (rowCount) await outbox.enqueue(client, messagesFor(approval));
          return { approval, created: rowCount === 1 };
        }),
      ),

    /** Throws NOT_FOUND. */
    get: (approvalId: string): Promise<Approval> =>
      withDatabaseErrors(async () => {
        const a = await read(pool, approvalId);
        if (!a) throw notFound();
        return a;
      }),

    /** Newest first, filtered by status as of now (`expired` included) and by user. */
    list: (q: { status?: ApprovalStatus | undefined; userId?: string | undefined; limit: number }): Promise<Approval[]> =>
      withDatabaseErrors(async () => {
        const { rows } = await pool.query<Row>(
          `SELECT * FROM (${SELECT} WHERE ($1::text IS NULL OR a.user_id = $1)) l
            WHERE ($2::text IS NULL OR l.status = $2) ORDER BY l.created_at DESC, l.approval_id LIMIT $3`,
          [q.userId ?? null, q.status ?? null, q.limit],
        );
        return rows.map(toApproval);
      }),

    /**
     * Counts `approver`'s approval (once, however often it approves) and marks the request
     * `approved` when it reaches the required number of distinct approvers. `messagesFor` is
     * written with a new sign-off only. Throws NOT_FOUND, APPROVAL_CLOSED (expired, rejected,
     * executed), FORBIDDEN (the requester approving its own request).
     */
    approve: (approvalId: string, approver: string, messagesFor: (a: Approval) => OutboxMessage[]): Promise<Approval> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          const a = await pending(client, approvalId);
          if (a.requestedBy === approver) {
            throw new FleetError(ErrorCode.FORBIDDEN, `broker user ${approver} sent this request and cannot approve it`, { details: { approvalId } });
          }
          if (a.status === 'approved') return a;
          const { rowCount } = await client.query('INSERT INTO approval_signoffs (approval_id, approver) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
            approvalId,
            approver,
          ]);
          if (!rowCount) return a;
          await client.query(
            `UPDATE approvals SET status = 'approved', decided_at = now()
              WHERE approval_id = $1 AND (SELECT count(*) FROM approval_signoffs WHERE approval_id = $1) >= required`,
            [approvalId],
          );
          const after = (await read(client, approvalId))!;
          await outbox.enqueue(client, messagesFor(after));
          return after;
        }),
      ),

    /** Ends a pending request. Throws NOT_FOUND, APPROVAL_CLOSED (also once approved: it is being executed). */
    reject: (approvalId: string, approver: string, reason: string | undefined, messagesFor: (a: Approval) => OutboxMessage[]): Promise<Approval> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          const a = await pending(client, approvalId);
          if (a.status !== 'pending') throw closed(a);
          await client.query(`UPDATE approvals SET status = 'rejected', decided_at = now(), rejected_by = $2, reject_reason = $3 WHERE approval_id = $1`, [
            approvalId,
            approver,
            reason ?? null,
          ]);
          const after = (await read(client, approvalId))!;
          await outbox.enqueue(client, messagesFor(after));
          return after;
        }),
      ),

    /**
     * Records the outcome of an approved request's execution, with its messages; only the first
     * outcome counts (a request no longer `approved` is returned as it is, nothing written).
     */
    finish: (
      approvalId: string,
      outcome: { status: 'completed'; result: Record<string, unknown> } | { status: 'failed'; error: { code: string; message: string } },
      messagesFor: (a: Approval) => OutboxMessage[],
    ): Promise<Approval> =>
      withDatabaseErrors(() =>
        inTransaction(pool, async (client) => {
          const { rowCount } = await client.query(`UPDATE approvals SET status = $2, result = $3, error = $4 WHERE approval_id = $1 AND status = 'approved'`, [
            approvalId,
            outcome.status,
            outcome.status === 'completed' ? JSON.stringify(outcome.result) : null,
            outcome.status === 'failed' ? JSON.stringify(outcome.error) : null,
          ]);
          const after = (await read(client, approvalId))!;
          if (rowCount) await outbox.enqueue(client, messagesFor(after));
          return after;
        }),
      ),
  };
}
