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
