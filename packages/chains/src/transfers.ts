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
