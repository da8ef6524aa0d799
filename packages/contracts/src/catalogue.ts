import type { z } from 'zod';
import * as approvals from './approvals.js';
import * as audit from './audit.js';
import * as deposits from './deposits.js';
import * as policy from './policy.js';
import { ErrorCode } from './errors.js';
import * as provisioning from './provisioning.js';
import * as wallet from './wallet.js';

const { FORBIDDEN, VALIDATION_FAILED, UNAVAILABLE, TIMEOUT, INTERNAL, OUTCOME_UNKNOWN } = ErrorCode;
/**
 * What any operation may answer: `VALIDATION_FAILED` (the body fails the request schema, or a value
 * the schema cannot check), `UNAVAILABLE` (a dependency is down or its breaker open: retryable),
 * `TIMEOUT` (the request's deadline passed while it was handled) and `INTERNAL` (unexpected; not
 * retried blindly), and `FORBIDDEN` (the caller's broker user holds none of the operation's `callers`
 * roles). The caller's own client adds `UNROUTABLE` and `TIMEOUT` when no reply comes.
 */
export const anyOperationErrors = [FORBIDDEN, VALIDATION_FAILED, UNAVAILABLE, TIMEOUT, INTERNAL] as const;
const any = anyOperationErrors;

/** The services of the fleet: each one connects to the broker as its own user. */
export const fleetServices = ['audit', 'wallet', 'provisioning', 'webhooks', 'reconciliation'] as const;
export type FleetService = (typeof fleetServices)[number];

/**
 * Named roles outside the fleet: `backend` for the product's own services, `ops` for operators and
 * their tools, `approver` for the people (or their services) who approve transactions the policy
 * holds back. The deployment maps broker users to roles (by default a user's name is its role);
 * approvers are distinct broker users, one per human or approving service.
 */
export const externalRoles = ['backend', 'ops', 'approver'] as const;

/** Every role a broker user can hold; callers and producers below name only these. */
export const roles = [...fleetServices, ...externalRoles] as const;
export type Role = (typeof roles)[number];

/** In `producers`: the role named by the routing key's second segment (`audit.<service>.<action>`). */
export const SERVICE_IN_KEY = '<service>';

/** What `wallet.transaction.transfer` and its alias `transferSol` may answer. */
const transferErrors = [
  ...any,
  ErrorCode.WALLET_NOT_FOUND,
  ErrorCode.UNSUPPORTED_CHAIN,
  ErrorCode.INVALID_RECIPIENT,
  ErrorCode.RATE_LIMITED,
  ErrorCode.IDEMPOTENCY_CONFLICT,
  ErrorCode.INSUFFICIENT_FUNDS,
  ErrorCode.SIGNING_FAILED,
  ErrorCode.SUBMISSION_FAILED,
  ErrorCode.POLICY_DENIED,
  ErrorCode.APPROVAL_REQUIRED,
  ErrorCode.APPROVAL_CLOSED,
];

/**
 * Every operation on `wallet.commands`. The key is the routing key; `request` validates the body
 * before any handler sees it; `result` is what `{ok:true,result}` carries. `owner` is the service
 * that consumes it; `callers` are the only roles whose requests it serves (others get `FORBIDDEN`).
 * `errors` are the codes of `{ok:false,error}` replies it may give (read from its
 * handler; a handler that starts throwing another code lists it here).
 *
 * `idempotent`: running it twice leaves the same state as once (reads, replacements, effects keyed
 * by the request itself). A request redelivered after a delivery whose outcome nobody saw is run
 * again only when its operation is idempotent or the request carries its `idempotencyKey` (the
 * handler dedupes on it); otherwise it is answered `OUTCOME_UNKNOWN`, which such operations list.
 */
export const operations = {
  'wallet.management.create': {
    owner: 'wallet',
    callers: ['backend', 'provisioning'],
    idempotent: false,
    summary: 'Create a wallet (key in KMS) for a user on a chain',
    request: wallet.WalletCreateRequest,
    result: wallet.Wallet,
    errors: [...any, OUTCOME_UNKNOWN, ErrorCode.IDEMPOTENCY_CONFLICT, ErrorCode.SIGNING_FAILED],
  },
  'wallet.management.list': {
    owner: 'wallet',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: "List a user's wallets",
    request: wallet.WalletListRequest,
    result: wallet.WalletList,
    errors: [...any],
  },
  'wallet.management.get': {
    owner: 'wallet',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: "Get one of a user's wallets",
    request: wallet.WalletRef,
    result: wallet.Wallet,
    errors: [...any, ErrorCode.WALLET_NOT_FOUND],
  },
  'wallet.management.setActive': {
    owner: 'wallet',
    callers: ['backend'],
    idempotent: true,
    summary: "Make a wallet the user's active one on its chain",
    request: wallet.WalletRef,
    result: wallet.Wallet,
    errors: [...any, ErrorCode.WALLET_NOT_FOUND],
  },
  'wallet.balance.get': {
    owner: 'wallet',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: 'Native balance of a wallet',
    request: wallet.WalletRef,
    result: wallet.Balance,
    errors: [...any, ErrorCode.WALLET_NOT_FOUND],
  },
  'wallet.balance.getTokens': {
    owner: 'wallet',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: 'Token balances of a wallet',
    request: wallet.WalletRef,
    result: wallet.TokenBalances,
    errors: [...any, ErrorCode.WALLET_NOT_FOUND, ErrorCode.UNSUPPORTED_CHAIN],
  },
  'wallet.transaction.transfer': {
    owner: 'wallet',
    callers: ['backend'],
    // Every request carries its required idempotencyKey: a redelivery is answered from its record.
    idempotent: true,
    summary:
      'Send native coins or tokens (SOL, SPL, ETH, ERC-20): the service builds the transaction, checks its policy, signs and sends it once per idempotency key',
    request: wallet.TransferRequest,
    result: wallet.TransferResult,
    errors: transferErrors,
  },
  'wallet.transaction.transferSol': {
    owner: 'wallet',
    callers: ['backend'],
    idempotent: false,
    summary: 'Send lamports from a Solana wallet (alias of `wallet.transaction.transfer` with `asset: {type:"native"}`)',
    request: wallet.TransferSolRequest,
    result: wallet.TransferResult,
    errors: [...transferErrors, OUTCOME_UNKNOWN],
  },
  'wallet.transaction.sign': {
    owner: 'wallet',
    callers: ['backend'],
    idempotent: false,
    summary: 'Sign a serialized transaction with the wallet key',
    request: wallet.SignRequest,
    result: wallet.SignResult,
    errors: [
      ...any,
      OUTCOME_UNKNOWN,
      ErrorCode.WALLET_NOT_FOUND,
      ErrorCode.RATE_LIMITED,
      ErrorCode.SIGNING_FAILED,
      ErrorCode.POLICY_DENIED,
      ErrorCode.APPROVAL_REQUIRED,
      ErrorCode.APPROVAL_CLOSED,
    ],
  },
  'wallet.approval.list': {
    owner: 'wallet',
    callers: ['approver', 'ops'],
    idempotent: true,
    summary: 'Approval requests, newest first (status as of now: a pending request past its expiry is `expired`)',
    request: approvals.ApprovalListRequest,
    result: approvals.ApprovalList,
    errors: [...any],
  },
  'wallet.approval.get': {
    owner: 'wallet',
    callers: ['approver', 'ops'],
    idempotent: true,
    summary: 'One approval request, with its result once executed',
    request: approvals.ApprovalRef,
    result: approvals.Approval,
    errors: [...any, ErrorCode.NOT_FOUND],
  },
  'wallet.approval.approve': {
    owner: 'wallet',
    callers: ['approver'],
    idempotent: true,
    // Approving twice counts once, and the execution runs once whatever redelivers it.
    summary: 'Approve a request as this broker user (not its requester); the N-th distinct approval executes it, once',
    request: approvals.ApprovalRef,
    result: approvals.Approval,
    // An execution that fails for good is the approval's `failed` status and `error`, not an error reply.
    errors: [...any, ErrorCode.NOT_FOUND, ErrorCode.APPROVAL_CLOSED],
  },
  'wallet.approval.reject': {
    owner: 'wallet',
    callers: ['approver'],
    idempotent: true,
    summary: 'Reject a pending request: it ends, nothing is signed',
    request: approvals.ApprovalRejectRequest,
    result: approvals.Approval,
    errors: [...any, ErrorCode.NOT_FOUND, ErrorCode.APPROVAL_CLOSED],
  },
  'wallet.policy.get': {
    owner: 'wallet',
    callers: ['ops'],
    idempotent: true,
    summary: 'The signing policy of one scope (fleet, user or wallet)',
    request: policy.PolicyGetRequest,
    result: policy.Policy,
    errors: [...any],
  },
  'wallet.policy.set': {
    owner: 'wallet',
    callers: ['ops'],
    idempotent: true,
    summary: 'Replace the signing policy of one scope (audited with before and after)',
    request: policy.PolicySetRequest,
    result: policy.Policy,
    errors: [...any, ErrorCode.WALLET_NOT_FOUND],
  },
  'wallet.provisioning.status': {
    owner: 'provisioning',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: 'Per-chain provisioning status of a user',
    request: provisioning.ProvisioningStatusRequest,
    result: provisioning.ProvisioningStatus,
    errors: [...any],
  },
  'wallet.provisioning.provision': {
    owner: 'provisioning',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: 'Admin trigger: (re-)provision a user, same body as kyc.approved',
    request: provisioning.KycApproved,
    result: provisioning.ProvisioningStatus,
    errors: [...any],
  },
  'wallet.deposits.stuck': {
    owner: 'webhooks',
    callers: ['reconciliation', 'ops'],
    idempotent: true,
    summary:
      'Deposits still pending or confirming after a given age (kind open), recent credits and reversals to re-check (kind credits); oldest first, cursor paging',
    request: deposits.DepositsStuckRequest,
    result: deposits.DepositsStuck,
    errors: [...any],
  },
  'wallet.deposits.reconcile': {
    owner: 'webhooks',
    callers: ['reconciliation', 'ops'],
    idempotent: true,
    summary:
      'Re-validate one deposit on chain now (credit once, confirming, fail, reverse a credit whose transaction left the chain, credit again a reversed transfer mined again)',
    request: deposits.DepositReconcileRequest,
    result: deposits.DepositReconcileResult,
    errors: [...any, ErrorCode.NOT_FOUND],
  },
  'wallet.deposits.summary': {
    owner: 'webhooks',
    callers: ['reconciliation', 'ops'],
    idempotent: true,
    summary: 'Deposit counts by status, ledger per asset and drift counts',
    request: deposits.DepositsSummaryRequest,
    result: deposits.DepositsSummary,
    errors: [...any],
  },
  'wallet.audit.query': {
    owner: 'audit',
    callers: ['backend', 'ops'],
    idempotent: true,
    summary: 'Query the audit log (newest first, cursor paging)',
    request: audit.AuditQueryRequest,
    result: audit.AuditQueryResult,
    errors: [...any],
  },
  'wallet.audit.verify': {
    owner: 'audit',
    callers: ['ops'],
    idempotent: true,
    summary: 'Walk the hash chain and report the first broken row',
    request: audit.AuditVerifyRequest,
    result: audit.AuditVerifyResult,
    errors: [...any, ErrorCode.RATE_LIMITED],
  },
  'wallet.audit.checkpoint': {
    owner: 'audit',
    callers: ['ops'],
    idempotent: false,
    summary: 'Sign the chain head now with the audit KMS key, keep it and publish it as `audit.checkpoint`',
    request: audit.AuditCheckpointRequest,
    result: audit.AuditCheckpoint,
    errors: [...any, OUTCOME_UNKNOWN, ErrorCode.SIGNING_FAILED, ErrorCode.NOT_FOUND],
  },
} as const satisfies Record<
  string,
  { owner: string; callers: readonly Role[]; idempotent: boolean; summary: string; request: z.ZodType; result: z.ZodType; errors: readonly ErrorCode[] }
>;

export type OperationName = keyof typeof operations;
export type RequestOf<Op extends OperationName> = z.input<(typeof operations)[Op]['request']>;
export type ParsedRequestOf<Op extends OperationName> = z.output<(typeof operations)[Op]['request']>;
export type ResultOf<Op extends OperationName> = z.output<(typeof operations)[Op]['result']>;

/**
 * Every event on `wallet.events`. `audit.#` stands for every `audit.<service>.<action>` key.
 * `producers` are the only roles that may publish it: the broker refuses others (topic
 * permissions) and consumers dead-letter what slips through (`forbidden_producer`).
 */
export const events = {
  'kyc.approved': { producers: ['backend'], summary: "A user's KYC was approved", payload: provisioning.KycApproved },
  'wallet.created': { producers: ['wallet'], summary: 'A wallet was created', payload: wallet.WalletCreated },
  'wallet.provisioning.completed': { producers: ['provisioning'], summary: 'All chains of a user are READY', payload: provisioning.ProvisioningCompleted },
  'provisioning.chain.requested': {
    producers: ['provisioning'],
    summary: 'Internal: one provisioning job (one chain of one user)',
    payload: provisioning.ProvisioningChainRequested,
  },
  'wallet.provisioning.failed': { producers: ['provisioning'], summary: 'A chain failed after its last attempt', payload: provisioning.ProvisioningFailed },
  'deposit.received': { producers: ['webhooks'], summary: 'A deposit webhook was accepted', payload: deposits.DepositReceived },
  'deposit.credited': { producers: ['webhooks'], summary: 'A deposit was credited to the ledger (once)', payload: deposits.DepositCredited },
  'deposit.failed': { producers: ['webhooks'], summary: 'A deposit was not credited', payload: deposits.DepositFailed },
  'audit.checkpoint': {
    producers: ['audit'],
    summary: 'The audit chain head, signed with the audit KMS key (kept outside the audit database)',
    payload: audit.AuditCheckpoint,
  },
  'deposit.reversed': {
    producers: ['webhooks'],
    summary: 'A credited deposit whose transaction left the chain was reversed (compensating entry)',
    payload: deposits.DepositReversed,
  },
  'wallet.approval.requested': {
    producers: ['wallet'],
    summary: 'A transaction waits for approvers (the policy asked for approval)',
    payload: approvals.Approval,
  },
  'wallet.approval.completed': {
    producers: ['wallet'],
    summary: 'An approved request was executed (status `completed`, with its result) or failed for good (`failed`)',
    payload: approvals.Approval,
  },
  'wallet.approval.rejected': { producers: ['wallet'], summary: 'An approver rejected a request: nothing is signed', payload: approvals.Approval },
  'audit.#': { producers: [SERVICE_IN_KEY], summary: 'An audit event, routing key `audit.<service>.<action>`', payload: audit.AuditEvent },
} as const satisfies Record<string, { producers: readonly (Role | typeof SERVICE_IN_KEY)[]; summary: string; payload: z.ZodType }>;

export type EventName = keyof typeof events;
export type PayloadOf<E extends EventName> = z.input<(typeof events)[E]['payload']>;
export type ParsedPayloadOf<E extends EventName> = z.output<(typeof events)[E]['payload']>;

/** The catalogue entry of a concrete event routing key (`audit.wallet.create` → `audit.#`). */
export function eventNameOf(routingKey: string): EventName | undefined {
  if (routingKey in events) return routingKey as EventName;
  if (/^audit\.[a-z0-9-]+\.[A-Za-z0-9._-]+$/.test(routingKey)) return 'audit.#';
  return undefined;
}

/** Whether `role` may send operation `op`. */
export function mayCall(role: string | undefined, op: OperationName): boolean {
  return role !== undefined && (operations[op].callers as readonly string[]).includes(role);
}

/**
 * The roles that may publish a concrete event routing key (`audit.wallet.create` → `['wallet']`;
 * an audit key naming no role → none). Empty for a key that is not in the catalogue.
 */
export function producersOf(routingKey: string): readonly Role[] {
  const name = eventNameOf(routingKey);
  if (!name) return [];
  const segment = routingKey.split('.')[1];
  return events[name].producers.flatMap((p): Role[] => {
    if (p !== SERVICE_IN_KEY) return [p];
    return (roles as readonly string[]).includes(segment ?? '') ? [segment as Role] : [];
  });
}

/** Whether `role` may publish the event with routing key `routingKey`. */
export function mayPublish(role: string | undefined, routingKey: string): boolean {
  return role !== undefined && (producersOf(routingKey) as readonly string[]).includes(role);
}
