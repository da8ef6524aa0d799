import type { Chain } from '../addresses.js';

/**
 * What one action of a transaction does, as far as the decoder understands it. Amounts are base
 * units as decimal strings (lamports, wei, octas, token base units), so an intent is plain JSON
 * and goes into audit events as it is.
 */
export type Action =
  | { kind: 'native-transfer'; from: string; to: string; amount: string }
  /** `token` is the SPL mint or ERC-20 contract; null for an SPL `Transfer`, which names no mint. */
  | { kind: 'token-transfer'; program: string; token: string | null; from: string; to: string; amount: string; decimals?: number }
  | { kind: 'create-account'; from: string; account: string; lamports: string; owner: string }
  | { kind: 'create-token-account'; payer: string; account: string; owner: string; mint: string; idempotent: boolean }
  /** A token account closed with its rent going back to the signing wallet itself. */
  | { kind: 'close-token-account'; program: string; account: string; destination: string }
  | { kind: 'memo'; text: string }
  | { kind: 'compute-budget'; unitLimit?: number; microLamportsPerUnit?: string; heapBytes?: number }
  /** An EVM call the policy does not read: `name` for the few selectors known to hand over tokens. */
  | { kind: 'contract-call'; contract: string; selector: string; name?: string; value: string }
  /** Anything else; `program` (a program id, contract or `address::module::function`) when there is one to allow. */
  | { kind: 'unknown'; program?: string; reason: string };

export interface Intent {
  chain: Chain;
  /** The account that pays and signs: Solana fee payer, EVM sender (the signing wallet), Aptos sender. */
  from: string;
  actions: Action[];
  /** The most the transaction may cost in fees, in native base units, and how it was computed. */
  fee: { max: string; detail: Record<string, string | number> };
  /**
   * When the transaction stops being valid: a Solana blockhash (about 150 blocks), an Aptos
   * expiration time, or `none` (EVM: valid until its nonce is used; Solana with a durable nonce).
   */
  expiry: { kind: 'blockhash'; blockhash: string } | { kind: 'timestamp'; unixSeconds: number } | { kind: 'none'; reason: string };
  /** Set when the transaction can never be signed whatever the policy says (wrong or missing chain id, unsupported type). */
  unsignable?: string;
}
