import { z } from 'zod';
import { BaseUnits, Chain } from './common.js';

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
  .strict();
export type DepositWebhookBody = z.infer<typeof DepositWebhookBody>;
export type Deposit = z.infer<typeof Deposit>;
