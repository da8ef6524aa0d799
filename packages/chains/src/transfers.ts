/**
 * Where a native transfer sits in its transaction. Kept with every transfer so that a caller can
 * tell two payments of one transaction apart (a later event index / token identity extends this
 * union instead of adding a second lookup).
 * - `solana-account`: the net lamport change of the account key at `accountIndex` (static keys, then
 *   those loaded from lookup tables), which counts every instruction and inner instruction at once;
 * - `evm-value`: the transaction's own `value` to its `to` (internal calls are not traced).
 */
export type TransferPosition = { kind: 'solana-account'; accountIndex: number } | { kind: 'evm-value' };

/** A movement of the chain's native coin (lamports, wei) to an address, as the chain recorded it. */
export interface NativeTransfer {
  /** The credited address, as the chain spells it (EVM: checksummed). */
  to: string;
  /** Base units, > 0. */
  amount: bigint;
  position: TransferPosition;
}

/**
 * What the chain says about a transaction, as far as native payments to one address go.
 * - `not_found`: the node does not know the transaction (yet, or ever);
 * - `pending`: known but not yet settled enough to read (EVM: not mined; Solana: only `processed`,
 *   or its detail not served yet);
 * - `failed`: it landed with an error (reverted, or a Solana execution error): it paid nothing;
 * - `landed`: it succeeded; `transfers` lists what it paid the address (empty: nothing), with how
 *   settled it is (`confirmations` counted by the caller's rule, `finality` as the node reports it).
 */
export type TransactionTransfers =
  | { status: 'not_found' }
  | { status: 'pending'; reason: string }
  | { status: 'failed'; reason: string }
  | {
      status: 'landed';
      /** Slot (Solana) or block number (EVM) it landed in. */
      block: bigint;
      /** Blocks on top of it, its own included (EVM); null where the node does not count them (Solana once finalized). */
      confirmations: bigint | null;
      /** Solana: the commitment reached; EVM: null (no finality asked yet). */
      finality: 'confirmed' | 'finalized' | null;
      transfers: NativeTransfer[];
    };

/**
 * What moved: the chain's native coin, or a token whose units the chain itself says (ERC-20
 * `decimals()`, an SPL mint's decimals from the transaction's token balances), never a caller.
 */
export type TransferAsset =
  | { kind: 'native' }
  /** `contract` checksummed. */
  | { kind: 'erc20'; contract: string; decimals: number }
  | { kind: 'spl'; mint: string; decimals: number; program: 'token' | 'token-2022' };

/**
 * One transfer of a transaction at its on-chain identity (see README "Deposit identity"):
 * `eventIndex` numbers it inside its transaction, and `(txId, asset.kind === 'native',
 * eventIndex)` names it once and for all.
 * - EVM: native value at 0; an ERC-20 `Transfer` log at its position in the receipt's logs (0-based,
 *   so it survives the transaction being mined again in another block);
 * - Solana: outer instruction `i` at `i`; inner instruction `j` (0-based, in execution order) under
 *   outer `i` at `(i + 1) * 100 + j` (a transaction traces at most 64 instructions).
 */
export interface OnChainTransfer {
  eventIndex: number;
  asset: TransferAsset;
  /** Payer (EVM: checksummed; SPL: the owner of the source token account). */
  from: string;
  /** Payee (EVM: checksummed; SPL: the owner of the destination token account, resolved on chain). */
  to: string;
  /** The destination token account (SPL only): `to` owns it. */
  tokenAccount?: string;
  /**
   * Base units that reached `to`, > 0 (zero-value transfers, such as address-poisoning spam, are left
   * out): for a Token-2022 mint with a transfer fee, the instruction's amount minus `fee`.
   */
  amount: bigint;
  /** Token-2022 transfer fee withheld from this transfer (not received by `to`); absent when none. */
  fee?: bigint;
}

/**
 * How settled a landed transaction is. `final` is the one bit a credit waits for:
 * - EVM with `finality: 'finalized'` (default): its block is at or below the node's `finalized`
 *   block; with `{ confirmations: n }`: `confirmations >= n`;
 * - Solana: its signature status reached the `finalized` commitment.
 */
export interface Finality {
  final: boolean;
  /** Blocks on top of it, its own included (EVM); Solana: as the node reports it (null once finalized). */
  confirmations: bigint | null;
  /** Solana: the commitment reached. */
  commitment?: 'confirmed' | 'finalized';
}

/**
 * Every transfer a transaction makes, to anyone, each at its on-chain identity.
 * - `not_found`: the node does not know it, or no longer does (EVM: its block was reorganised
 *   away): a credit made for it must be reversed;
 * - `pending`: known, not readable yet (EVM: not mined; Solana: only `processed`);
 * - `failed`: landed with an error: it moved nothing;
 * - `landed`: succeeded, with its block and finality.
 */
export type TransactionReport =
  | { status: 'not_found' }
  | { status: 'pending'; reason: string }
  | { status: 'failed'; reason: string }
  | {
      status: 'landed';
      /** Slot (Solana) or block number (EVM), and the block's hash (EVM) to notice a move after a reorganisation. */
      block: { number: bigint; hash?: string };
      finality: Finality;
      transfers: OnChainTransfer[];
    };
