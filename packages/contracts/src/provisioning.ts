import { z } from 'zod';
import { Chain, Timestamp, UserId } from './common.js';

/** Event `kyc.approved`, published by the KYC service; also accepted as a command. */
export const KycApproved = z.object({ userId: UserId, chains: z.array(Chain).min(1).optional().describe('Default: every chain') }).strict();
export type KycApproved = z.infer<typeof KycApproved>;

export const ProvisioningChainStatus = z.object({
  chain: Chain,
  status: z.enum(['PENDING', 'READY', 'FAILED']),
  attempts: z.number().int().nonnegative(),
  lastError: z.object({ code: z.string(), message: z.string() }).nullable(),
  address: z.string().nullable(),
  walletId: z.string().nullable(),
  updatedAt: Timestamp,
});
export const ProvisioningStatusRequest = z.object({ userId: UserId }).strict();
export const ProvisioningStatus = z.object({ userId: UserId, chains: z.array(ProvisioningChainStatus) });

export const ProvisioningCompleted = z.object({
  userId: UserId,
  wallets: z.array(z.object({ chain: Chain, walletId: z.string(), address: z.string() })),
});
export const ProvisioningFailed = z.object({
  userId: UserId,
  chain: Chain,
  attempts: z.number().int(),
  error: z.object({ code: z.string(), message: z.string() }),
});

/**
 * Internal event `provisioning.chain.requested`: one provisioning job for one chain of a user,
 * produced and consumed by the provisioning service (each chain retried on its own).
 */
export const ProvisioningChainRequested = z.object({ userId: UserId, chain: Chain }).strict();
