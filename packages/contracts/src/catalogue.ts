import { z } from 'zod';
import * as audit from './audit.js';
import * as deposits from './deposits.js';
import { ErrorCode } from './errors.js';
import * as provisioning from './provisioning.js';
import * as wallet from './wallet.js';

const { VALIDATION_FAILED, UNAVAILABLE, TIMEOUT, INTERNAL } = ErrorCode;
/**
 * What any operation may answer: `VALIDATION_FAILED` (the body fails the request schema, or a value
 * the schema cannot check), `UNAVAILABLE` (a dependency is down or its breaker open: retryable),
 * `TIMEOUT` (the request's deadline passed while it was handled) and `INTERNAL` (unexpected; not
 * retried blindly). The caller's own client adds `UNROUTABLE` and `TIMEOUT` when no reply comes.
 */
export const anyOperationErrors = [VALIDATION_FAILED, UNAVAILABLE, TIMEOUT, INTERNAL] as const;
const any = anyOperationErrors;

/**
 * Every operation on `wallet.commands`. The key is the routing key; `request` validates the body
 * before any handler sees it; `result` is what `{ok:true,result}` carries. `owner` is the service
 * that consumes it. `errors` are the codes of `{ok:false,error}` replies it may give (read from its
 * handler; a handler that starts throwing another code lists it here).
 */
export const operations = {
  'wallet.management.create': { owner: 'wallet', summary: 'Create a wallet (key in KMS) for a user on a chain', request: wallet.WalletCreateRequest, result: wallet.Wallet, errors: [...any, ErrorCode.IDEMPOTENCY_CONFLICT, ErrorCode.SIGNING_FAILED] },
  'wallet.management.list': { owner: 'wallet', summary: "List a user's wallets", request: wallet.WalletListRequest, result: wallet.WalletList, errors: [...any] },
  'wallet.management.get': { owner: 'wallet', summary: "Get one of a user's wallets", request: wallet.WalletRef, result: wallet.Wallet, errors: [...any, ErrorCode.WALLET_NOT_FOUND] },
  'wallet.management.setActive': { owner: 'wallet', summary: "Make a wallet the user's active one on its chain", request: wallet.WalletRef, result: wallet.Wallet, errors: [...any, ErrorCode.WALLET_NOT_FOUND] },
  'wallet.balance.get': { owner: 'wallet', summary: 'Native balance of a wallet', request: wallet.WalletRef, result: wallet.Balance, errors: [...any, ErrorCode.WALLET_NOT_FOUND] },
  'wallet.balance.getTokens': { owner: 'wallet', summary: 'Token balances of a wallet', request: wallet.WalletRef, result: wallet.TokenBalances, errors: [...any, ErrorCode.WALLET_NOT_FOUND, ErrorCode.UNSUPPORTED_CHAIN] },
  'wallet.transaction.transferSol': { owner: 'wallet', summary: 'Send lamports from a Solana wallet', request: wallet.TransferSolRequest, result: wallet.TransferResult, errors: [...any, ErrorCode.WALLET_NOT_FOUND, ErrorCode.UNSUPPORTED_CHAIN, ErrorCode.INVALID_RECIPIENT, ErrorCode.RATE_LIMITED, ErrorCode.IDEMPOTENCY_CONFLICT, ErrorCode.INSUFFICIENT_FUNDS, ErrorCode.SIGNING_FAILED, ErrorCode.SUBMISSION_FAILED] },
  'wallet.transaction.sign': { owner: 'wallet', summary: 'Sign a serialized transaction with the wallet key', request: wallet.SignRequest, result: wallet.SignResult, errors: [...any, ErrorCode.WALLET_NOT_FOUND, ErrorCode.RATE_LIMITED, ErrorCode.SIGNING_FAILED] },
  'wallet.provisioning.status': { owner: 'provisioning', summary: "Per-chain provisioning status of a user", request: provisioning.ProvisioningStatusRequest, result: provisioning.ProvisioningStatus, errors: [...any] },
  'wallet.provisioning.provision': { owner: 'provisioning', summary: 'Admin trigger: (re-)provision a user, same body as kyc.approved', request: provisioning.KycApproved, result: provisioning.ProvisioningStatus, errors: [...any] },
  'wallet.deposits.stuck': { owner: 'webhooks', summary: 'Deposits still pending after a given age (oldest first, cursor paging)', request: deposits.DepositsStuckRequest, result: deposits.DepositsStuck, errors: [...any] },
  'wallet.deposits.reconcile': { owner: 'webhooks', summary: 'Re-validate one pending deposit on chain now (credit once, fail, or leave pending)', request: deposits.DepositReconcileRequest, result: deposits.DepositReconcileResult, errors: [...any, ErrorCode.NOT_FOUND] },
  'wallet.deposits.summary': { owner: 'webhooks', summary: 'Deposit counts by status and ledger drift counts', request: deposits.DepositsSummaryRequest, result: deposits.DepositsSummary, errors: [...any] },
  'wallet.audit.query': { owner: 'audit', summary: 'Query the audit log (newest first, cursor paging)', request: audit.AuditQueryRequest, result: audit.AuditQueryResult, errors: [...any] },
  'wallet.audit.verify': { owner: 'audit', summary: 'Walk the hash chain and report the first broken row', request: audit.AuditVerifyRequest, result: audit.AuditVerifyResult, errors: [...any, ErrorCode.RATE_LIMITED] },
} as const satisfies Record<string, { owner: string; summary: string; request: z.ZodType; result: z.ZodType; errors: readonly ErrorCode[] }>;

export type OperationName = keyof typeof operations;
export type RequestOf<Op extends OperationName> = z.input<(typeof operations)[Op]['request']>;
export type ParsedRequestOf<Op extends OperationName> = z.output<(typeof operations)[Op]['request']>;
export type ResultOf<Op extends OperationName> = z.output<(typeof operations)[Op]['result']>;

/**
 * Every event on `wallet.events`. `audit.#` stands for every `audit.<service>.<action>` key.
 */
export const events = {
  'kyc.approved': { producer: 'kyc', summary: "A user's KYC was approved", payload: provisioning.KycApproved },
  'wallet.created': { producer: 'wallet', summary: 'A wallet was created', payload: wallet.WalletCreated },
  'wallet.provisioning.completed': { producer: 'provisioning', summary: 'All chains of a user are READY', payload: provisioning.ProvisioningCompleted },
  'provisioning.chain.requested': { producer: 'provisioning', summary: 'Internal: one provisioning job (one chain of one user)', payload: provisioning.ProvisioningChainRequested },
  'wallet.provisioning.failed': { producer: 'provisioning', summary: 'A chain failed after its last attempt', payload: provisioning.ProvisioningFailed },
  'deposit.received': { producer: 'webhooks', summary: 'A deposit webhook was accepted', payload: deposits.DepositReceived },
  'deposit.credited': { producer: 'webhooks', summary: 'A deposit was credited to the ledger (once)', payload: deposits.DepositCredited },
  'deposit.failed': { producer: 'webhooks', summary: 'A deposit was not credited', payload: deposits.DepositFailed },
  'audit.#': { producer: 'any', summary: 'An audit event, routing key `audit.<service>.<action>`', payload: audit.AuditEvent },
} as const satisfies Record<string, { producer: string; summary: string; payload: z.ZodType }>;

export type EventName = keyof typeof events;
export type PayloadOf<E extends EventName> = z.input<(typeof events)[E]['payload']>;
export type ParsedPayloadOf<E extends EventName> = z.output<(typeof events)[E]['payload']>;

/** The catalogue entry of a concrete event routing key (`audit.wallet.create` → `audit.#`). */
export function eventNameOf(routingKey: string): EventName | undefined {
  if (routingKey in events) return routingKey as EventName;
  if (/^audit\.[a-z0-9-]+\.[A-Za-z0-9._-]+$/.test(routingKey)) return 'audit.#';
  return undefined;
}
