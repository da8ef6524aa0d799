import { z } from 'zod';
import { BaseUnits, Chain, Timestamp, Uuid } from './common.js';

export const Deposit = z.object({
  depositId: z.string(),
  chain: Chain,
  txHash: z.string().min(1).max(128),
  eventIndex: z.number().int().nonnegative().default(0),
  token: z.string().min(1).max(128).describe('`native` or the token mint/contract'),
  amount: BaseUnits,
  toAddress: z.string().min(1).max(128),
  walletId: z.string().optional(),
  userId: z.string().optional(),
});
export const DepositReceived = Deposit;
export const DepositCredited = Deposit.extend({ ledgerEntryId: z.string() });
export const DepositFailed = Deposit.extend({ reason: z.string() });

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** The number of bytes a base58 string decodes to, or undefined when it is not base58. */
function base58Length(s: string): number | undefined {
  let n = 0n;
  for (const c of s) {
    const d = BASE58.indexOf(c);
    if (d < 0) return undefined;
    n = n * 58n + BigInt(d);
  }
  let zeros = 0;
  while (zeros < s.length && s[zeros] === '1') zeros++;
  return zeros + (n === 0n ? 0 : Math.ceil(n.toString(16).length / 2));
}

/**
 * Whether `txHash` can be a transaction id on `chain`: EVM and Aptos `0x` + 64 hex digits, Solana
 * the base58 of a 64-byte signature.
 */
export function isTxHashOf(chain: z.infer<typeof Chain>, txHash: string): boolean {
  if (chain === 'SOL') return txHash.length <= 90 && base58Length(txHash) === 64;
  return /^0x[0-9a-fA-F]{64}$/.test(txHash);
}

/**
 * Body of `POST /webhooks/deposits` (services/webhooks), validated strictly: an unknown field is
 * refused, not ignored. One transfer of one transaction; `eventIndex` tells several transfers of
 * one transaction apart.
 */
export const DepositWebhookBody = z
  .object({
    chain: Chain,
    txHash: z.string().min(1).max(128).regex(/^[A-Za-z0-9]+$/, 'letters and digits only (base58 or 0x-hex)'),
    token: z.string().min(1).max(128).regex(/^[A-Za-z0-9:_]+$/, '`native` or a token mint/contract address'),
    amount: BaseUnits,
    toAddress: z.string().min(1).max(128).regex(/^[A-Za-z0-9]+$/, 'letters and digits only'),
    eventIndex: z.number().int().nonnegative().max(1_000_000).default(0),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (!isTxHashOf(b.chain, b.txHash)) {
      ctx.addIssue({
        code: 'custom',
        path: ['txHash'],
        message: b.chain === 'SOL' ? 'not a Solana signature (base58 of 64 bytes)' : 'not a transaction hash (0x and 64 hex digits)',
      });
    }
  });
export type DepositWebhookBody = z.infer<typeof DepositWebhookBody>;
export type Deposit = z.infer<typeof Deposit>;

/** Deposit job states (services/webhooks). `rejected`: never ours (unknown address, impossible payload). */
export const DepositStatus = z.enum(['pending', 'credited', 'failed', 'rejected']);
export type DepositStatus = z.infer<typeof DepositStatus>;

/**
 * `wallet.deposits.stuck`: deposits still `pending` that were accepted at least `olderThanSeconds`
 * ago, and deposits `rejected` because their address was no wallet of ours when they arrived but is
 * one now, oldest first, in pages (`after` is the previous page's `next`).
 */
export const DepositsStuckRequest = z
  .object({
    olderThanSeconds: z.number().int().nonnegative().max(365 * 86_400),
    limit: z.number().int().min(1).max(1000).default(100),
    after: z.string().max(200).optional().describe('Cursor: the `next` of the previous page'),
  })
  .strict();
export const DepositsStuck = z.object({
  deposits: z.array(
    z.object({
      depositId: z.string(),
      chain: Chain,
      txHash: z.string(),
      acceptedAt: Timestamp,
      attempts: z.number().int().nonnegative(),
    }),
  ),
  next: z.string().optional().describe('Cursor of the next page; absent on the last page'),
});

/**
 * `wallet.deposits.reconcile`: re-validates one deposit on chain now (a deposit rejected for an
 * unknown address that is now ours is re-opened first). Confirmed → credited (once);
 * failed on chain → failed; not found or not confirmed and accepted more than `maxAgeSeconds` ago →
 * failed; otherwise left `pending`. A deposit no longer pending is answered as it is (`changed:
 * false`). RPC down → the UNAVAILABLE error (retryable), nothing changes.
 */
export const DepositReconcileRequest = z
  .object({
    depositId: Uuid,
    maxAgeSeconds: z.number().int().min(1).max(365 * 86_400),
  })
  .strict();
export const DepositReconcileResult = z.object({
  depositId: z.string(),
  status: DepositStatus,
  changed: z.boolean().describe('true when this call moved the deposit out of `pending`'),
  reason: z.string().optional(),
});

/**
 * `wallet.deposits.summary`: counts an operator (and reconciliation) watches for drift. Each
 * `drift` count should be 0; anything else is a bug or a manual edit to look at.
 */
export const DepositsSummaryRequest = z.object({}).strict();
export const DepositsSummary = z.object({
  byStatus: z.record(DepositStatus, z.number().int().nonnegative()),
  oldestPendingAt: Timestamp.nullable(),
  drift: z.object({
    creditedWithoutLedgerEntry: z.number().int().nonnegative(),
    ledgerEntryWithoutCredit: z.number().int().nonnegative(),
    ledgerAmountMismatch: z.number().int().nonnegative(),
  }),
});
