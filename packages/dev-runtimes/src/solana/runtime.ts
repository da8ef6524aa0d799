import type { LiteSVM } from 'litesvm';
import { Ledger } from './ledger.js';
import { rpcMethods } from './rpc-methods.js';
import { serveJsonRpc } from './http-server.js';

export interface SolanaRuntimeOptions {
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  host?: string;
  /** How often the slot and blockhash advance; default 400 ms (a cluster's slot time). */
  slotMs?: number;
  /**
   * Slots a landed transaction is reported `confirmed` before it is `finalized` (a cluster takes
   * about 32); default 0: final at once.
   */
  finalizeAfterSlots?: number;
}

export interface SolanaRuntime {
  readonly url: string;
  readonly port: number;
  /** The in-process VM, for tests that need to set accounts up directly. */
  readonly svm: LiteSVM;
  /** Credits `lamports` to `address` (base58); returns the airdrop's signature. */
  airdrop(address: string, lamports: bigint): string;
  stop(): Promise<void>;
}

/**
 * A Solana JSON-RPC endpoint (HTTP only, no websocket) over an in-process litesvm: real
 * transaction execution and signature checks, one node, every transaction final at once (or after
 * `finalizeAfterSlots`). Serves
 * what @solana/web3.js's Connection calls for balances, transfers, token accounts and
 * confirmation by polling. Development and tests only. Rejects with the listen error (EADDRINUSE).
 */
export async function startSolanaRuntime(options: SolanaRuntimeOptions = {}): Promise<SolanaRuntime> {
  const ledger = await Ledger.create(options.slotMs ?? 400, options.finalizeAfterSlots ?? 0);
  const host = options.host ?? '127.0.0.1';
  let server;
  try {
    server = await serveJsonRpc(rpcMethods(ledger), { host, port: options.port ?? 0 });
  } catch (e) {
    ledger.stop();
    throw e;
  }
  const { port } = server;
  return {
    url: `http://${host}:${port}`,
    port,
    svm: ledger.svm,
    airdrop: (address, lamports) => ledger.airdrop(address, lamports),
    stop: () => {
      ledger.stop();
      return server.close();
    },
  };
}
