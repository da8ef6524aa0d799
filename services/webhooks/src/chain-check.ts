import { type Chain, ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { type ClaimVerdict, type EvmFinality, createEvmAdapter, createSolanaAdapter, judgeClaim } from '@wallet-fleet/chains';
import type { DepositRow } from './store/deposit-store.js';

export type { ClaimVerdict } from '@wallet-fleet/chains';

export interface ChainChecker {
  /**
   * Weighs a deposit's claim (token, amount, toAddress at its eventIndex) against the transfer at that
   * on-chain identity (packages/chains `transfersOf` + `judgeClaim`): final, confirming, pending,
   * not_found, or mismatch with the reason. Throws UNAVAILABLE (RPC down: retryable),
   * UNSUPPORTED_CHAIN (Aptos: no node to ask; not retryable), VALIDATION_FAILED (a hash that cannot
   * exist on that chain; not retryable).
   */
  check(d: Pick<DepositRow, 'chain' | 'txHash' | 'eventIndex' | 'token' | 'amount' | 'toAddress'>): Promise<ClaimVerdict>;
  /**
   * Whether `final` on this chain is the chain's own finality (Solana `finalized`; EVM with
   * `EVM_FINALITY=finalized`), which no reorganisation undoes, rather than N confirmations.
   */
  atChainFinality(chain: Chain): boolean;
}

export interface ChainCheckerOptions {
  solanaRpcUrl: string;
  evmRpcUrl: string;
  /** When an EVM transaction is final: the node's `finalized` tag, or N confirmations (nodes without finality). */
  evmFinality: EvmFinality;
  timeoutMs: number;
}

/** Chain validation per chain: the adapters read every transfer of the transaction; `judgeClaim` weighs the claim. */
export function createChainChecker(o: ChainCheckerOptions): ChainChecker {
  const solana = createSolanaAdapter({ rpcUrl: o.solanaRpcUrl, requestTimeoutMs: o.timeoutMs });
  const evm = createEvmAdapter({ rpcUrl: o.evmRpcUrl, requestTimeoutMs: o.timeoutMs, finality: o.evmFinality });
  return {
    atChainFinality: (chain) => chain === 'SOL' || (chain === 'ETH' && o.evmFinality === 'finalized'),
    async check(d) {
      if (d.chain === 'APTOS') {
        // No Aptos node runs here (none installs offline); not retried, the row stays for reconciliation.
        throw FleetError.nonRetryable(ErrorCode.UNSUPPORTED_CHAIN, 'Aptos deposits are not validated yet');
      }
      const report = await (d.chain === 'SOL' ? solana : evm).transfersOf(d.txHash);
      return judgeClaim(report, {
        chain: d.chain,
        txHash: d.txHash,
        eventIndex: d.eventIndex,
        token: d.token,
        amount: BigInt(d.amount),
        toAddress: d.toAddress,
      });
    },
  };
}
