import type { Wallet } from '@wallet-fleet/contracts';
import type pg from 'pg';
import { rememberAddress } from '../store/deposit-store.js';

/** The `wallet.created` handler: remembers the address as ours (idempotent). Throws UNAVAILABLE. */
export function createWalletCreatedHandler(pool: pg.Pool) {
  return async (w: Wallet): Promise<void> => {
    await rememberAddress(pool, { chain: w.chain, address: w.address, walletId: w.walletId, userId: w.userId });
  };
}
