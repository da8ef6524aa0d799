import { z } from 'zod';
import { Chain, SafeJsonObject, Text, Timestamp, UserId, Uuid } from './common.js';

/**
 * Where an approval request stands. `pending` until the N-th distinct approver approves
 * (`approved`, then `completed` once executed, or `failed` when the execution was refused or failed
 * for good), a rejection (`rejected`) or its expiry (`expired`).
 */
export const ApprovalStatus = z.enum(['pending', 'approved', 'completed', 'failed', 'rejected', 'expired']);
export type ApprovalStatus = z.infer<typeof ApprovalStatus>;

/** The operations whose requests can wait for approval. */
export const ApprovableOperation = z.enum(['wallet.transaction.sign', 'wallet.transaction.transferSol', 'wallet.transaction.transfer']);
export type ApprovableOperation = z.infer<typeof ApprovableOperation>;

/** A kept request; also the payload of `wallet.approval.requested`, `.completed` and `.rejected`. */
export const Approval = z.object({
  approvalId: Uuid,
  operation: ApprovableOperation,
  userId: UserId,
  walletId: Uuid,
  chain: Chain,
  status: ApprovalStatus,
  requestedBy: z.string().describe('Broker user that sent the request (it can never approve it)'),
  required: z.number().int().describe('Distinct approvers needed'),
  approvedBy: z.array(z.object({ user: z.string(), at: Timestamp })).describe('Distinct approvers so far, in order'),
  rejectedBy: z.object({ user: z.string(), at: Timestamp, reason: z.string().optional() }).nullable(),
  request: SafeJsonObject.describe('The request as it was sent (what will be executed)'),
  intent: SafeJsonObject.describe('The decoded transaction (see docs/policy.md)'),
  rule: SafeJsonObject.describe('The approval rule that applied: scope, asset, threshold, amount'),
  createdAt: Timestamp,
  expiresAt: Timestamp,
  result: SafeJsonObject.nullable().describe('Once completed: the result of the operation (the signature or the transfer)'),
  error: z.object({ code: z.string(), message: z.string() }).nullable().describe('Once failed: why'),
});
export type Approval = z.infer<typeof Approval>;

export const ApprovalRef = z.object({ approvalId: Uuid }).strict();
export const ApprovalRejectRequest = z.object({ approvalId: Uuid, reason: Text(1, 500).optional() }).strict();
export const ApprovalListRequest = z
  .object({
    status: ApprovalStatus.optional(),
    userId: UserId.optional(),
    limit: z.number().int().min(1).max(200).default(50),
  })
  .strict();
export const ApprovalList = z.object({ items: z.array(Approval).describe('Newest first') });
