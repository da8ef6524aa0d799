import { z } from 'zod';
import { BaseUnits, Chain, IdempotencyKey, Timestamp, UserId, Uuid } from './common.js';

export const Wallet = z.object({
  walletId: Uuid,
  userId: UserId,
  chain: Chain,
  address: z.string().describe('Base58 (SOL), EIP-55 (ETH) or 0x-hex (APTOS) address'),
  label: z.string().max(100).nullable(),
  isActive: z.boolean(),
  createdAt: Timestamp,
});
export type Wallet = z.infer<typeof Wallet>;

export const WalletCreateRequest = z
  .object({
    userId: UserId,
    chain: Chain,
    label: z.string().max(100).optional(),
    idempotencyKey: IdempotencyKey.optional().describe('Same key and payload → same wallet'),
  })
  .strict();
export const WalletListRequest = z.object({ userId: UserId, chain: Chain.optional() }).strict();
export const WalletRef = z.object({ userId: UserId, walletId: Uuid }).strict();
export const WalletList = z.object({ items: z.array(Wallet) });

export const Balance = z.object({
  walletId: Uuid,
  chain: Chain,
  amount: BaseUnits,
  decimals: z.number().int(),
  symbol: z.string(),
});
const TokenBalance = z.object({
  mint: z.string().describe('Token mint (SPL) or contract (ERC-20) address'),
  account: z.string().optional(),
  amount: BaseUnits,
  decimals: z.number().int(),
});
export const TokenBalances = z.object({ walletId: Uuid, chain: Chain, tokens: z.array(TokenBalance) });

export const TransferSolRequest = z
  .object({
    userId: UserId,
    walletId: Uuid,
    recipient: z.string().min(32).max(44),
    amount: BaseUnits.describe('Lamports'),
    idempotencyKey: IdempotencyKey.optional().describe(
      'Same key and payload → the same transfer, sent at most once: a retry (after a timeout or a crash) asks the chain what became of the first one instead of signing another',
    ),
  })
  .strict();
/** What a typed transfer moves: the chain's own coin, an SPL token (by mint) or an ERC-20 (by contract). */
const TransferAsset = z.union([
  z.object({ type: z.literal('native') }).strict(),
  z.object({ type: z.literal('token'), mint: z.string().min(32).max(44).describe('SPL mint (SOL wallets; Token or Token-2022)') }).strict(),
  z
    .object({
      type: z.literal('token'),
      contract: z
        .string()
        .regex(/^0x[0-9a-fA-F]{40}$/, 'a 0x address')
        .describe('ERC-20 contract (ETH wallets)'),
    })
    .strict(),
]);

export const TransferRequest = z
  .object({
    userId: UserId,
    walletId: Uuid,
    asset: TransferAsset.describe('`{type:"native"}`, `{type:"token", mint}` (SPL) or `{type:"token", contract}` (ERC-20)'),
    recipient: z.string().min(32).max(66).describe("The recipient's wallet address (for SPL, its owner: the token account is derived)"),
    amount: BaseUnits.describe('Base units of the asset (lamports, wei, token base units)'),
    idempotencyKey: IdempotencyKey.describe(
      'Required: same key and payload → the same transfer, sent at most once; a retry asks the chain what became of the first one instead of signing another',
    ),
  })
  .strict();

export const TransferResult = z.object({
  signature: z.string().describe('Solana signature (base58) or EVM transaction hash'),
  status: z.enum(['confirmed', 'finalized', 'submitted', 'failed']),
  source: z
    .enum(['chain', 'record'])
    .describe(
      '`chain`: `status` is what the chain answered for this call. `record`: the transfer was already recorded as confirmed (the same idempotency key again), and `status` is that record, answered without asking the chain',
    ),
  checkedOnChain: z.boolean().describe('Whether the chain was asked during this call (`false` for an answer from the record)'),
});

export const SignRequest = z
  .object({
    userId: UserId,
    walletId: Uuid,
    transaction: z.string().min(1).max(65536).describe('Serialized transaction: base64 (SOL, APTOS BCS) or 0x-hex (ETH)'),
  })
  .strict();
export const SignResult = z.object({
  signedTransaction: z.string(),
  hash: z.string().optional().describe('Transaction hash (ETH) or signature (SOL)'),
});

/** Event `wallet.created`. */
export const WalletCreated = Wallet;
