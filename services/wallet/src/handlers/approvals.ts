import { type ApprovableOperation, type Approval, ErrorCode, FleetError, type ParsedRequestOf, auditMessage, isFleetError } from '@wallet-fleet/contracts';
import type { HandlerContext, OutboxMessage } from '@wallet-fleet/messaging';
import type { ApprovalStore } from '../store/approval-store.js';

/** Executes an approved request: the operation's own path, the approval id in its audit events. */
type ApprovalExecutor = (approval: Approval, ctx: HandlerContext) => Promise<Record<string, unknown>>;

/** One executor per operation whose requests can wait for approval. */
export type ApprovalExecutors = Record<ApprovableOperation, ApprovalExecutor>;

/** An approval event, written through the outbox with the state it tells of. */
export const approvalMessage = (event: 'wallet.approval.requested' | 'wallet.approval.completed' | 'wallet.approval.rejected', a: Approval): OutboxMessage => ({
  routingKey: event,
  payload: a,
});

export interface ApprovalDeps {
  approvals: ApprovalStore;
  executors: ApprovalExecutors;
  /** Runs `fn` alone for `name` across replicas (an advisory lock), waiting at most `waitMs`; then UNAVAILABLE. */
  lock<T>(name: string, waitMs: number, fn: () => Promise<T>): Promise<T>;
  /** How long an approval waits for another one executing the same request. */
  lockWaitMs: number;
}

/**
 * `wallet.approval.list/get` (callers `approver`, `ops`) and `approve/reject` (callers `approver`).
 * The approver is the verified broker user of the call (`ctx.caller`); distinct approvers are
 * distinct broker users, and the broker user that sent a request can never approve it. The
 * approval that brings a request to its required count executes it, once: executions of one
 * request run one after another (a lock per request) and each looks at the request's state first,
 * so concurrent approvals, a repeated or redelivered approve, or an approve after a crash between
 * approval and execution execute it once (a transfer through its idempotency key on top).
 */
export function createApprovalHandlers(d: ApprovalDeps) {
  const approverOf = (ctx: HandlerContext): string => {
    if (!ctx.caller.user) throw new FleetError(ErrorCode.FORBIDDEN, 'an approval needs a broker user');
    return ctx.caller.user;
  };
  const audit = (action: string, a: Approval, user: string, ctx: HandlerContext, extra: Record<string, unknown> = {}) =>
    auditMessage('wallet', action, {
      resource: { type: 'approval', id: a.approvalId },
      userId: a.userId,
      actor: { type: 'operator', id: user },
      status: 'success',
      after: {
        operation: a.operation,
        walletId: a.walletId,
        status: a.status,
        required: a.required,
        approvedBy: a.approvedBy.map((x) => x.user),
        ...extra,
      },
      ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
    });
  const completed = (a: Approval) => [approvalMessage('wallet.approval.completed', a)];

  /**
   * Executes an approved request unless another call already did. A retryable failure leaves it
   * approved (the next approve executes it again, the transfer's idempotency key keeps that to one
   * transfer) and is thrown; any other ends it `failed`, with the error in the approval and its
   * `wallet.approval.completed` event.
   */
  const execute = (a: Approval, ctx: HandlerContext): Promise<Approval> =>
    d.lock(`approval:${a.approvalId}`, d.lockWaitMs, async () => {
      const now = await d.approvals.get(a.approvalId);
      if (now.status !== 'approved') return now;
      let result: Record<string, unknown>;
      try {
        result = await d.executors[now.operation](now, ctx);
      } catch (e) {
        const err = isFleetError(e) ? e : new FleetError(ErrorCode.INTERNAL, 'unexpected failure', { cause: e });
        if (err.retryable) throw err;
        ctx.logger.warn({ approvalId: now.approvalId, code: err.code }, 'approved request failed on execution');
        return d.approvals.finish(now.approvalId, { status: 'failed', error: { code: err.code, message: err.message } }, completed);
      }
      return d.approvals.finish(now.approvalId, { status: 'completed', result }, completed);
    });

  return {
    'wallet.approval.list': async (r: ParsedRequestOf<'wallet.approval.list'>) => ({ items: await d.approvals.list(r) }),

    /** Throws NOT_FOUND. */
    'wallet.approval.get': (r: ParsedRequestOf<'wallet.approval.get'>) => d.approvals.get(r.approvalId),

    /** Throws NOT_FOUND, APPROVAL_CLOSED, FORBIDDEN (own request), and what the execution throws retryably. */
    'wallet.approval.approve': async (r: ParsedRequestOf<'wallet.approval.approve'>, ctx: HandlerContext) => {
      const user = approverOf(ctx);
      const a = await d.approvals.approve(r.approvalId, user, (after) => [audit('wallet.approval.approve', after, user, ctx)]);
      return a.status === 'approved' ? execute(a, ctx) : a;
    },

    /** Throws NOT_FOUND, APPROVAL_CLOSED (no longer pending). */
    'wallet.approval.reject': (r: ParsedRequestOf<'wallet.approval.reject'>, ctx: HandlerContext) => {
      const user = approverOf(ctx);
      return d.approvals.reject(r.approvalId, user, r.reason, (after) => [
        audit('wallet.approval.reject', after, user, ctx, r.reason ? { reason: r.reason } : {}),
        approvalMessage('wallet.approval.rejected', after),
      ]);
    },
  };
}
