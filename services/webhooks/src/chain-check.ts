import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import { BaseError, createPublicClient, http, type Hex } from 'viem';
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
   * UNSUPPORTED_CHAIN (Aptos: no node to ask; not retryable), VALIDATION_FAILED (a hash or token
   * that cannot exist on that chain; not retryable).
   */
  check(d: Pick<DepositRow, 'chain' | 'txHash' | 'token' | 'amount' | 'toAddress'>): Promise<ChainVerdict>;
}

export interface ChainCheckerOptions {
  solanaRpcUrl: string;
  evmRpcUrl: string;
  evmMinConfirmations: number;
  timeoutMs: number;
}

const unavailable = (what: string, e: unknown) =>
  new FleetError(ErrorCode.UNAVAILABLE, `${what} failed: ${e instanceof Error ? e.message : String(e)}`, { retryable: true, cause: e });

class RpcMethodMissing extends Error {}

async function solanaRpc<T>(url: string, method: string, params: unknown[], timeoutMs: number): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw unavailable(`solana ${method}`, e);
  }
  if (!res.ok) throw unavailable(`solana ${method}`, new Error(`HTTP ${res.status}`));
  const body = (await res.json().catch(() => ({}))) as { result?: T; error?: { code: number; message: string } };
  if (body.error) {
    if (body.error.code === -32601) throw new RpcMethodMissing(method);
    throw unavailable(`solana ${method}`, new Error(body.error.message));
  }
  return body.result as T;
}

interface SolanaStatus {
  err: unknown;
  confirmationStatus?: 'processed' | 'confirmed' | 'finalized' | null;
}
interface SolanaTx {
  meta: { err: unknown; preBalances: number[]; postBalances: number[] } | null;
  transaction: { message: { accountKeys: Array<string | { pubkey: string }> } };
}

/** Chain validation per chain (native transfers). */
export function createChainChecker(o: ChainCheckerOptions): ChainChecker {
  const evm = createPublicClient({ transport: http(o.evmRpcUrl, { timeout: o.timeoutMs, retryCount: 0 }) });

  async function solana(d: Parameters<ChainChecker['check']>[0]): Promise<ChainVerdict> {
    if (!/^[1-9A-HJ-NP-Za-km-z]{64,90}$/.test(d.txHash)) throw FleetError.validation([{ path: 'txHash', message: 'not a Solana signature' }]);
    const statuses = await solanaRpc<{ value: Array<SolanaStatus | null> }>(
      o.solanaRpcUrl,
      'getSignatureStatuses',
      [[d.txHash], { searchTransactionHistory: true }],
      o.timeoutMs,
    );
    const s = statuses.value[0];
    if (!s) return { kind: 'not_found' };
    if (s.err) return { kind: 'failed', reason: 'transaction failed on chain' };
    if (s.confirmationStatus === 'processed') return { kind: 'pending', reason: 'not yet confirmed' };
    let tx: SolanaTx | null;
    try {
      tx = await solanaRpc<SolanaTx | null>(
        o.solanaRpcUrl,
        'getTransaction',
        [d.txHash, { encoding: 'json', commitment: 'confirmed', maxSupportedTransactionVersion: 0 }],
        o.timeoutMs,
      );
    } catch (e) {
      if (!(e instanceof RpcMethodMissing)) throw e;
      // Without the transaction the amount and recipient cannot be checked: never accept on status alone.
      throw new FleetError(ErrorCode.UNAVAILABLE, 'solana node does not serve getTransaction', { retryable: true });
    }
    if (!tx || !tx.meta) return { kind: 'pending', reason: 'transaction detail not yet available' };
    const keys = tx.transaction.message.accountKeys.map((k) => (typeof k === 'string' ? k : k.pubkey));
    const i = keys.indexOf(d.toAddress);
    if (i < 0) return { kind: 'failed', reason: 'the transaction does not touch the address' };
    const delta = BigInt(tx.meta.postBalances[i] ?? 0) - BigInt(tx.meta.preBalances[i] ?? 0);
    if (delta !== BigInt(d.amount)) return { kind: 'failed', reason: `the address received ${delta}, not ${d.amount}` };
    return { kind: 'confirmed' };
  }

  async function ethereum(d: Parameters<ChainChecker['check']>[0]): Promise<ChainVerdict> {
    if (!/^0x[0-9a-fA-F]{64}$/.test(d.txHash)) throw FleetError.validation([{ path: 'txHash', message: 'not an EVM transaction hash' }]);
    const hash = d.txHash as Hex;
    const call = async <T>(what: string, fn: () => Promise<T>, notFound: string): Promise<T | undefined> => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof BaseError && e.walk((x) => (x as { name?: string })?.name === notFound)) return undefined;
        throw unavailable(`evm ${what}`, e);
      }
    };
    const tx = await call('getTransaction', () => evm.getTransaction({ hash }), 'TransactionNotFoundError');
    if (!tx) return { kind: 'not_found' };
    const receipt = await call('getTransactionReceipt', () => evm.getTransactionReceipt({ hash }), 'TransactionReceiptNotFoundError');
    if (!receipt) return { kind: 'pending', reason: 'not yet mined' };
    if (receipt.status !== 'success') return { kind: 'failed', reason: 'transaction reverted' };
    const head = await call('getBlockNumber', () => evm.getBlockNumber({ cacheTime: 0 }), '-');
    const confirmations = head! - receipt.blockNumber + 1n;
    if (confirmations < BigInt(o.evmMinConfirmations)) return { kind: 'pending', reason: `${confirmations} confirmations` };
    if (!tx.to || tx.to.toLowerCase() !== d.toAddress.toLowerCase()) return { kind: 'failed', reason: 'the transaction does not pay the address' };
    if (tx.value !== BigInt(d.amount)) return { kind: 'failed', reason: `the address received ${tx.value}, not ${d.amount}` };
    return { kind: 'confirmed' };
  }

  return {
    async check(d) {
      if (d.token !== 'native') {
        throw FleetError.validation([{ path: 'token', message: 'only native deposits are validated' }]);
      }
      if (d.chain === 'SOL') return solana(d);
      if (d.chain === 'ETH') return ethereum(d);
      // No Aptos node runs here (none installs offline); not retried, the row stays for reconciliation.
      throw FleetError.nonRetryable(ErrorCode.UNSUPPORTED_CHAIN, 'Aptos deposits are not validated yet');
    },
  };
}
