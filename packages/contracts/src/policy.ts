import { z } from 'zod';
import { BaseUnits, Text, Timestamp, UserId, Uuid } from './common.js';

/**
 * An asset as policies name it: the chain alone for its native coin (`SOL`, `ETH`, `APTOS`), or
 * `chain:token` for a token (`SOL:<mint>`, `ETH:<contract>`; `SOL:unknown-mint` for an SPL
 * `Transfer`, which does not name its mint).
 */
const AssetKey = z
  .string()
  .regex(/^(SOL|ETH|APTOS)(:[A-Za-z0-9-]{1,66})?$/, '`SOL`, `ETH`, `APTOS`, or `<chain>:<mint or contract>`')
  .describe('`SOL`, `ETH`, `APTOS` (native), or `<chain>:<mint or contract>` (token)');

const Caps = z.record(AssetKey, BaseUnits);
const Addresses = z.array(Text(1, 100)).max(1000);

/**
 * The rules of one scope. Every rule present in any scope that applies (fleet, the wallet's user,
 * the wallet) must hold; `allowPrograms` of all of them add up.
 */
export const PolicyRules = z
  .object({
    maxPerTransaction: Caps.optional().describe('Largest amount of an asset one transaction may move'),
    dailyPerWallet: Caps.optional().describe('Most of an asset one wallet may move in any 24 h'),
    dailyPerUser: Caps.optional().describe("Most of an asset all of a user's wallets together may move in any 24 h"),
    allowDestinations: Addresses.optional().describe('When set, the only addresses value may go to (an address book)'),
    denyDestinations: Addresses.optional().describe('Addresses value may never go to'),
    allowPrograms: z
      .array(Text(1, 300))
      .max(200)
      .optional()
      .describe('Programs, contracts or Aptos entry functions whose otherwise unknown actions may be signed'),
    approvalAbove: Caps.optional().describe('Above this amount of an asset (fees included), a transaction waits for `approvers` distinct approvers'),
    approvers: z.number().int().min(1).max(10).optional().describe('Distinct approvers needed above `approvalAbove` (default 2)'),
  })
  .strict();
export type PolicyRules = z.infer<typeof PolicyRules>;

const FleetScope = z.object({ scope: z.literal('fleet') });
const UserScope = z.object({ scope: z.literal('user'), userId: UserId });
const WalletScope = z.object({ scope: z.literal('wallet'), walletId: Uuid });

export const PolicyGetRequest = z.discriminatedUnion('scope', [FleetScope.strict(), UserScope.strict(), WalletScope.strict()]);
export const PolicySetRequest = z.discriminatedUnion('scope', [
  FleetScope.extend({ rules: PolicyRules }).strict(),
  UserScope.extend({ rules: PolicyRules }).strict(),
  WalletScope.extend({ rules: PolicyRules }).strict(),
]);
export type PolicyScopeRef = z.infer<typeof PolicyGetRequest>;

export const Policy = z.object({
  scope: z.enum(['fleet', 'user', 'wallet']),
  id: z.string().nullable().describe('userId or walletId; null for the fleet'),
  rules: PolicyRules,
  version: z.number().int().describe('0 for a scope never set; +1 per change'),
  updatedAt: Timestamp.nullable(),
});
