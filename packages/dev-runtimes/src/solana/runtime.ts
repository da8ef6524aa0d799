import { ACCOUNT_SIZE, AccountLayout, AccountState, MINT_SIZE, MintLayout, TOKEN_PROGRAM_ID } from '@solana/spl-token';
import { PublicKey } from '@solana/web3.js';
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
  /**
   * Writes an SPL mint (no mint authority) at `address`, owned by `programId` (Token by default,
   * or Token-2022): what a test needs where the runtime cannot run the instructions that would make it.
   */
  setMint(address: string, options: { decimals: number; supply?: bigint; programId?: string }): void;
  /**
   * Writes an initialised token account at `address` holding `amount` of `mint` for `owner`: the
   * way to give a wallet an associated token account, which the runtime cannot create (see README).
   */
  setTokenAccount(address: string, options: { mint: string; owner: string; amount: bigint; programId?: string }): void;
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
    setMint(address, { decimals, supply = 0n, programId }) {
      const data = Buffer.alloc(MINT_SIZE);
      MintLayout.encode(
        {
          mintAuthorityOption: 0,
          mintAuthority: PublicKey.default,
          supply,
          decimals,
          isInitialized: true,
          freezeAuthorityOption: 0,
          freezeAuthority: PublicKey.default,
        },
        data,
      );
      setOwned(ledger.svm, address, data, programId);
    },
    setTokenAccount(address, { mint, owner, amount, programId }) {
      const data = Buffer.alloc(ACCOUNT_SIZE);
      AccountLayout.encode(
        {
          mint: new PublicKey(mint),
          owner: new PublicKey(owner),
          amount,
          delegateOption: 0,
          delegate: PublicKey.default,
          state: AccountState.Initialized,
          isNativeOption: 0,
          isNative: 0n,
          delegatedAmount: 0n,
          closeAuthorityOption: 0,
          closeAuthority: PublicKey.default,
        },
        data,
      );
      setOwned(ledger.svm, address, data, programId);
    },
    stop: () => {
      ledger.stop();
      return server.close();
    },
  };
}

/** A rent-exempt account of `programId` (default: the Token program) holding `data`. */
function setOwned(svm: LiteSVM, address: string, data: Buffer, programId = TOKEN_PROGRAM_ID.toBase58()): void {
  svm.setAccount(new PublicKey(address), {
    executable: false,
    owner: new PublicKey(programId),
    lamports: Number(svm.minimumBalanceForRentExemption(BigInt(data.length))),
    data,
    rentEpoch: 0,
  });
}
