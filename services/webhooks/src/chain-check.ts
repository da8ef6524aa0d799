import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { type TransactionTransfers, createEvmAdapter, createSolanaAdapter } from '@wallet-fleet/chains';
import type { DepositRow } from './store/deposit-store.js';

/** What the chain says about a deposit. */
export type ChainVerdict =
  | { kind: 'confirmed'; note?: string }
  | { kind: 'failed'; reason: string }
  | { kind: 'not_found' }
  | { kind: 'pending'; reason: string };

export interface ChainChecker {
  /**
   * Validates a native-token deposit against the chain. Throws UNAVAILABLE (RPC down: retryable),
   * UNSUPPORTED_CHAIN (Aptos: no node to ask; not retryable), VALIDATION_FAILED (a hash, address
   * or token that cannot exist on that chain; not retryable).
   */
  check(d: Pick<DepositRow, 'chain' | 'txHash' | 'token' | 'amount' | 'toAddress'>): Promise<ChainVerdict>;
}

export interface ChainCheckerOptions {
  solanaRpcUrl: string;
  evmRpcUrl: string;
  evmMinConfirmations: number;
  timeoutMs: number;
}

/**
 * Chain validation per chain (native transfers): the adapters of packages/chains read what the
 * transaction paid the address; this only weighs that against what the webhook claims.
 */
export function createChainChecker(o: ChainCheckerOptions): ChainChecker {
  const solana = createSolanaAdapter({ rpcUrl: o.solanaRpcUrl, requestTimeoutMs: o.timeoutMs });
  const evm = createEvmAdapter({ rpcUrl: o.evmRpcUrl, requestTimeoutMs: o.timeoutMs });
  const minConfirmations = BigInt(o.evmMinConfirmations);

  return {
    async check(d) {
      if (d.token !== 'native') {
        throw FleetError.validation([{ path: 'token', message: 'only native deposits are validated' }]);
      }
      if (d.chain === 'SOL') return verdict(await solana.nativeTransfers(d.txHash, d.toAddress), BigInt(d.amount));
      if (d.chain === 'ETH') {
        const found = await evm.nativeTransfers(d.txHash, d.toAddress);
        if (found.status === 'landed' && found.confirmations !== null && found.confirmations < minConfirmations) {
          return { kind: 'pending', reason: `${found.confirmations} confirmations` };
        }
        return verdict(found, BigInt(d.amount));
      }
      // No Aptos node runs here (none installs offline); not retried, the row stays for reconciliation.
      throw FleetError.nonRetryable(ErrorCode.UNSUPPORTED_CHAIN, 'Aptos deposits are not validated yet');
    },
  };
}

function verdict(found: TransactionTransfers, amount: bigint): ChainVerdict {
  switch (found.status) {
    case 'not_found':
      return { kind: 'not_found' };
    case 'pending':
      return { kind: 'pending', reason: found.reason };
    case 'failed':
      return { kind: 'failed', reason: found.reason };
    case 'landed': {
      if (found.transfers.length === 0) return { kind: 'failed', reason: 'the transaction does not touch the address (pays it nothing)' };
      const received = found.transfers.reduce((sum, t) => sum + t.amount, 0n);
      if (received !== amount) return { kind: 'failed', reason: `the address received ${received}, not ${amount}` };
      return { kind: 'confirmed' };
    }
  }
}
