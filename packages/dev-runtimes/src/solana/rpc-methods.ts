import { VersionedMessage } from '@solana/web3.js';
import { BLOCKHASH_WINDOW, type Ledger } from './ledger.js';
import { RpcError } from './errors.js';
import { decodeTx, key, transactionJson, verifySignatures } from './wire.js';

const LAMPORTS_PER_SIGNATURE = 5000;

/** One JSON-RPC method: positional params in, result out; throws RpcError for an error answer. */
export type RpcMethod = (params: any[]) => unknown;

/**
 * The JSON-RPC methods over a ledger: what @solana/web3.js's Connection calls for balances,
 * transfers, token accounts and confirmation by polling.
 */
export function rpcMethods(ledger: Ledger): Record<string, RpcMethod> {
  const { svm } = ledger;
  const context = () => ({ apiVersion: '2.1.0', slot: ledger.slot });
  return {
    getVersion: () => ({ 'solana-core': '2.1.0', 'feature-set': 0 }),
    getHealth: () => 'ok',
    getGenesisHash: () => ledger.genesisHash,
    getSlot: () => ledger.slot,
    getBlockHeight: () => ledger.slot,
    getEpochInfo: () => ({
      absoluteSlot: ledger.slot,
      blockHeight: ledger.slot,
      epoch: 0,
      slotIndex: ledger.slot,
      slotsInEpoch: 432000,
      transactionCount: ledger.statuses.size,
    }),
    getLatestBlockhash: () => ({
      context: context(),
      value: { blockhash: ledger.latestBlockhash, lastValidBlockHeight: ledger.slot + BLOCKHASH_WINDOW },
    }),
    isBlockhashValid: ([hash]) => ({ context: context(), value: ledger.recent.includes(String(hash)) }),
    getBalance: ([address]) => ({ context: context(), value: Number(svm.getBalance(key(address)) ?? 0n) }),
    getAccountInfo: ([address, config]) => ({ context: context(), value: ledger.accountJson(String(address), config?.encoding) }),
    getMultipleAccounts: ([addresses, config]) => ({
      context: context(),
      value: (addresses as string[]).map((a) => ledger.accountJson(String(a), config?.encoding)),
    }),
    getMinimumBalanceForRentExemption: ([len]) => Number(svm.minimumBalanceForRentExemption(BigInt(len ?? 0))),
    getFeeForMessage: ([message]) => {
      const msg = VersionedMessage.deserialize(Buffer.from(String(message), 'base64'));
      return { context: context(), value: msg.header.numRequiredSignatures * LAMPORTS_PER_SIGNATURE };
    },
    requestAirdrop: ([address, lamports]) => ledger.airdrop(String(address), BigInt(lamports)),
    sendTransaction: ([encoded, config]) => ledger.execute(decodeTx(String(encoded), config?.encoding), !config?.skipPreflight),
    simulateTransaction: ([encoded, config]) => {
      const tx = decodeTx(String(encoded), config?.encoding);
      ledger.refuseUnsafe(tx);
      if (config?.sigVerify && !verifySignatures(tx)) throw new RpcError(-32003, 'Transaction signature verification failure');
      if (config?.replaceRecentBlockhash) tx.message.recentBlockhash = ledger.latestBlockhash;
      else if (!ledger.recent.includes(tx.message.recentBlockhash)) {
        return { context: context(), value: { err: 'BlockhashNotFound', logs: [], accounts: null, unitsConsumed: 0, returnData: null } };
      }
      const { err, logs, unitsConsumed } = ledger.simulate(tx, Boolean(config?.sigVerify));
      return { context: context(), value: { err, logs, accounts: null, unitsConsumed, returnData: null } };
    },
    getSignatureStatuses: ([signatures]) => ({
      context: context(),
      value: (signatures as string[]).map((s) => {
        const st = ledger.statuses.get(String(s));
        if (!st) return null;
        // One node, no forks: what executed is confirmed, and final after finalizeAfterSlots.
        const final = ledger.finalized(st.slot);
        return {
          slot: st.slot,
          confirmations: final ? null : ledger.slot - st.slot,
          err: st.err,
          status: st.err === null ? { Ok: null } : { Err: st.err },
          confirmationStatus: final ? 'finalized' : 'confirmed',
        };
      }),
    }),
    getTransaction: ([signature, config]) => {
      const landed = ledger.statuses.get(String(signature));
      // As a validator: asked at `finalized`, a transaction not yet finalized is not there.
      if (!landed || (typeof config === 'object' && config?.commitment === 'finalized' && !ledger.finalized(landed.slot))) return null;
      const encoding = typeof config === 'string' ? config : (config?.encoding ?? 'json');
      const maxVersion = typeof config === 'object' ? config?.maxSupportedTransactionVersion : undefined;
      return transactionJson(landed, encoding, maxVersion);
    },
    getTokenAccountsByOwner: ([owner, filter, config]) => ({ context: context(), value: ledger.tokenAccountsByOwner(key(owner), filter, config?.encoding) }),
  };
}
