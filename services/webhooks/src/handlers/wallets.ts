import type { Wallet } from '@wallet-fleet/contracts';
import type { DepositStore } from '../store/deposit-store.js';

/** The `wallet.created` handler: remembers the address as ours (idempotent). Throws UNAVAILABLE. */
export function createWalletCreatedHandler(store: DepositStore) {
  return async (w: Wallet): Promise<void> => {
    await store.rememberAddress({ chain: w.chain, address: w.address, walletId: w.walletId, userId: w.userId });
  };
}
