import type { z } from 'zod';
import * as audit from './audit.js';
import * as deposits from './deposits.js';
import * as provisioning from './provisioning.js';
import * as wallet from './wallet.js';

/**
 * Every operation on `wallet.commands`. The key is the routing key; `request` validates the body
 * before any handler sees it; `result` is what `{ok:true,result}` carries. `owner` is the service
 * that consumes it.
 */
export const operations = {
  'wallet.management.create': { owner: 'wallet', summary: 'Create a wallet (key in KMS) for a user on a chain', request: wallet.WalletCreateRequest, result: wallet.Wallet },
  'wallet.management.list': { owner: 'wallet', summary: "List a user's wallets", request: wallet.WalletListRequest, result: wallet.WalletList },
  'wallet.management.get': { owner: 'wallet', summary: "Get one of a user's wallets", request: wallet.WalletRef, result: wallet.Wallet },
  'wallet.management.setActive': { owner: 'wallet', summary: "Make a wallet the user's active one on its chain", request: wallet.WalletRef, result: wallet.Wallet },
  'wallet.balance.get': { owner: 'wallet', summary: 'Native balance of a wallet', request: wallet.WalletRef, result: wallet.Balance },
  'wallet.balance.getTokens': { owner: 'wallet', summary: 'Token balances of a wallet', request: wallet.WalletRef, result: wallet.TokenBalances },
  'wallet.transaction.transferSol': { owner: 'wallet', summary: 'Send lamports from a Solana wallet', request: wallet.TransferSolRequest, result: wallet.TransferResult },
  'wallet.transaction.sign': { owner: 'wallet', summary: 'Sign a serialized transaction with the wallet key', request: wallet.SignRequest, result: wallet.SignResult },
  'wallet.provisioning.status': { owner: 'provisioning', summary: "Per-chain provisioning status of a user", request: provisioning.ProvisioningStatusRequest, result: provisioning.ProvisioningStatus },
  'wallet.provisioning.provision': { owner: 'provisioning', summary: 'Admin trigger: (re-)provision a user, same body as kyc.approved', request: provisioning.KycApproved, result: provisioning.ProvisioningStatus },
  'wallet.deposits.stuck': { owner: 'webhooks', summary: 'Deposits still pending after a given age (oldest first, cursor paging)', request: deposits.DepositsStuckRequest, result: deposits.DepositsStuck },
  'wallet.deposits.reconcile': { owner: 'webhooks', summary: 'Re-validate one pending deposit on chain now (credit once, fail, or leave pending)', request: deposits.DepositReconcileRequest, result: deposits.DepositReconcileResult },
  'wallet.deposits.summary': { owner: 'webhooks', summary: 'Deposit counts by status and ledger drift counts', request: deposits.DepositsSummaryRequest, result: deposits.DepositsSummary },
  'wallet.audit.query': { owner: 'audit', summary: 'Query the audit log (newest first, cursor paging)', request: audit.AuditQueryRequest, result: audit.AuditQueryResult },
  'wallet.audit.verify': { owner: 'audit', summary: 'Walk the hash chain and report the first broken row', request: audit.AuditVerifyRequest, result: audit.AuditVerifyResult },
} as const satisfies Record<string, { owner: string; summary: string; request: z.ZodType; result: z.ZodType }>;

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
