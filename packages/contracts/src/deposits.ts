import { z } from 'zod';
import { BaseUnits, Chain, Text, Timestamp, Uuid } from './common.js';

/**
 * A deposit as the webhooks service announces it and consumes it again (`deposit.received`): text
 * it keeps in PostgreSQL is `Text` (no NUL, no lone surrogate) and the id is the row's uuid, so that a
 * hostile event is refused at the edge (dead-lettered as `validation`), not by the database.
 */
export const Deposit = z.object({
  depositId: Uuid,
  chain: Chain,
  txHash: Text(1, 128),
  eventIndex: z.number().int().nonnegative().default(0),
  token: Text(1, 128).describe('`native` or the token mint/contract'),
  amount: BaseUnits,
  toAddress: Text(1, 128),
  walletId: Text(0, 512).optional(),
  userId: Text(0, 512).optional(),
  /** Set once the chain has been read: what moved, as the chain says, never as the webhook says. */
  asset: Text(0, 512).optional().describe('`native`, the ERC-20 contract (checksummed) or the SPL mint, read from the chain'),
  decimals: z.number().int().nonnegative().optional().describe("The asset's decimals, read from the chain"),
  creditKey: Text(0, 512).optional().describe('The on-chain identity credited at most once: `chain:txHash:native|token:eventIndex`'),
});
export const DepositReceived = Deposit;
export const DepositCredited = Deposit.extend({ ledgerEntryId: z.string() });
export const DepositFailed = Deposit.extend({ reason: z.string() });
/** A credited deposit whose transaction left the canonical chain: a compensating (negative) ledger entry. */
export const DepositReversed = Deposit.extend({ ledgerEntryId: z.string().describe('The compensating entry'), reason: z.string() });

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
function isTxHashOf(chain: z.infer<typeof Chain>, txHash: string): boolean {
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
    txHash: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9]+$/, 'letters and digits only (base58 or 0x-hex)'),
    token: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9:_]+$/, '`native` or a token mint/contract address'),
    amount: BaseUnits,
    toAddress: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9]+$/, 'letters and digits only'),
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

/**
 * Deposit job states (services/webhooks). `confirming`: the claim matches the chain, not final yet.
 * `failed`: the claim is not what the chain says (or it never landed). `rejected`: never ours (unknown
 * address, impossible payload). `unlisted`: a final token transfer whose token is not in the
 * allow-list: recorded, not credited. `reversed`: credited, then its transaction left the canonical
 * chain (a reorganisation): a compensating ledger entry cancels the credit.
 */
export const DepositStatus = z.enum(['pending', 'confirming', 'credited', 'failed', 'rejected', 'unlisted', 'reversed']);
export type DepositStatus = z.infer<typeof DepositStatus>;

/**
 * `wallet.deposits.stuck`: open work (`kind: "open"`): deposits still `pending` or `confirming` that
 * were accepted at least `olderThanSeconds` ago, deposits `rejected` because their address was no
 * wallet of ours when they arrived but is one now; re-checks (`kind: "credits"`): deposits credited at
 * N confirmations, or reversed, within the service's re-check window (`DEPOSIT_RECHECK_WINDOW_SECONDS`:
 * a credit whose transaction left the chain is reversed, a reversed transfer mined again is credited
 * again); both without `kind`. Oldest first, in pages (`after` is the previous page's `next`, with
 * the same `kind`).
 */
export const DepositsStuckRequest = z
  .object({
    olderThanSeconds: z
      .number()
      .int()
      .nonnegative()
      .max(365 * 86_400),
    limit: z.number().int().min(1).max(1000).default(100),
    after: z.string().max(200).optional().describe('Cursor: the `next` of the previous page'),
    kind: z
      .enum(['open', 'credits'])
      .optional()
      .describe('open: pending, confirming, rejected now ours; credits: recent credits and reversals to re-check; absent: both'),
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
 * unknown address that is now ours is re-opened first). Final and matching → credited (once per
 * on-chain transfer); matching but not final → `confirming`; not what the chain says → failed; not
 * found or not mined and accepted more than `maxAgeSeconds` ago → failed; otherwise left `pending`.
 * A credited deposit is checked again: its transaction no longer on the chain at this check and at
 * one at least `DEPOSIT_REVERSE_AFTER_SECONDS` before → `reversed` with a compensating ledger entry
 * (never a credit made at the chain's own finality: the answer gives the reason). A reversed deposit
 * whose transfer is on chain again is re-opened as a new deposit for the same claim and settled; the
 * answer names that deposit. Other settled deposits are answered as they are (`changed: false`).
 * RPC down → the UNAVAILABLE error (retryable), nothing changes.
 */
export const DepositReconcileRequest = z
  .object({
    depositId: Uuid,
    maxAgeSeconds: z
      .number()
      .int()
      .min(1)
      .max(365 * 86_400),
  })
  .strict();
export const DepositReconcileResult = z.object({
  depositId: z.string(),
  status: DepositStatus,
  changed: z.boolean().describe("true when this call changed the deposit's status"),
  reason: z.string().optional(),
});

const Drift = z.object({
  creditedWithoutLedgerEntry: z.number().int().nonnegative().describe('credited (or reversed) deposits without their credit entry'),
  ledgerEntryWithoutCredit: z
    .number()
    .int()
    .nonnegative()
    .describe('credit entries of deposits neither credited nor reversed; reversal entries of deposits not reversed'),
  ledgerAmountMismatch: z
    .number()
    .int()
    .nonnegative()
    .describe('entries whose amount (a reversal: minus the amount), token, chain or asset differ from their deposit'),
  reversedWithoutCompensation: z.number().int().nonnegative().describe('reversed deposits without their compensating entry'),
});

/**
 * `wallet.deposits.summary`: counts an operator (and reconciliation) watches for drift. Each
 * `drift` count should be 0; anything else is a bug or a manual edit to look at. `assets` is the
 * ledger per asset (chain + asset as the chain names it), with the same drift counts per asset.
 */
export const DepositsSummaryRequest = z.object({}).strict();
export const DepositsSummary = z.object({
  byStatus: z.record(DepositStatus, z.number().int().nonnegative()),
  oldestPendingAt: Timestamp.nullable(),
  drift: Drift,
  assets: z.array(
    z.object({
      chain: Chain,
      asset: z.string().describe('`native`, the ERC-20 contract (checksummed) or the SPL mint'),
      decimals: z.number().int().nonnegative().nullable(),
      credits: z.number().int().nonnegative(),
      credited: BaseUnits.describe('Sum of credit entries'),
      reversals: z.number().int().nonnegative(),
      reversed: BaseUnits.describe('Sum of reversal entries, as a positive amount'),
      balance: z
        .string()
        .regex(/^-?[0-9]+$/)
        .describe('credited - reversed (negative only with drift)'),
      drift: Drift,
    }),
  ),
});
