import { createHash, randomUUID } from 'node:crypto';
import { aptosAddress, ethereumAddress, solanaAddress } from '@wallet-fleet/chains';
import { type Chain, ErrorCode, FleetError, type ParsedRequestOf, type Wallet } from '@wallet-fleet/contracts';
import type { HandlerContext } from '@wallet-fleet/messaging';
import { databaseError } from '@wallet-fleet/service-kit';
import type pg from 'pg';
import { type KeyCustody, type OutboxWriter, algorithmOf } from '../ports.js';
import { type WalletRecord, inTransaction, publicWallet, uniqueViolation, walletStore } from '../store/wallet-store.js';
import { auditMessage } from './audit.js';

export interface ManagementDeps {
  pool: pg.Pool;
  custody: KeyCustody;
  outbox: OutboxWriter;
}

function addressOf(chain: Chain, publicKey: Uint8Array): string {
  switch (chain) {
    case 'SOL':
      return solanaAddress(publicKey);
    case 'ETH':
      return ethereumAddress(publicKey);
    case 'APTOS':
      return aptosAddress(publicKey);
  }
}

/** The wallet id of an idempotent create: derived from user and key, so every retry and every racing replica names the same KMS key. */
function walletIdFor(userId: string, idempotencyKey: string): string {
  const h = createHash('sha256').update(`wallet-fleet:create\n${userId}\n${idempotencyKey}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x80; // RFC 9562 version 8 (custom)
  h[8] = (h[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

const requestHash = (r: ParsedRequestOf<'wallet.management.create'>) =>
  createHash('sha256').update(JSON.stringify([r.chain, r.label ?? null])).digest('hex');

const notFound = () => new FleetError(ErrorCode.WALLET_NOT_FOUND, 'wallet not found');

/**
 * `wallet.management.*`. A wallet of another user answers WALLET_NOT_FOUND exactly like one that
 * does not exist. Database failures are UNAVAILABLE (retryable); KMS failures come from the custody
 * (UNAVAILABLE, SIGNING_FAILED).
 */
export function createManagementHandlers({ pool, custody, outbox }: ManagementDeps) {
  async function replay(userId: string, key: string, hash: string): Promise<Wallet | undefined> {
    const prior = await walletStore.findCreateRequest(pool, userId, key);
    if (!prior) return undefined;
    if (prior.requestHash !== hash) {
      throw new FleetError(ErrorCode.IDEMPOTENCY_CONFLICT, 'idempotencyKey was used before with another payload');
    }
    const w = await walletStore.get(pool, userId, prior.walletId);
    if (!w) throw new FleetError(ErrorCode.INTERNAL, 'idempotency record without its wallet');
    return publicWallet(w);
  }

  async function insert(
    r: ParsedRequestOf<'wallet.management.create'>,
    row: Parameters<typeof walletStore.insert>[1],
    hash: string,
    ctx: HandlerContext,
  ): Promise<WalletRecord> {
    // Two first wallets of a user on a chain created at once: the partial unique index lets one be
    // active, and the other is inserted again as inactive.
    for (const active of ['if-first', false] as const) {
      try {
        return await inTransaction(pool, async (client) => {
          const w = await walletStore.insert(client, row, active);
          if (r.idempotencyKey) await walletStore.insertCreateRequest(client, r.userId, r.idempotencyKey, hash, w.walletId);
          await outbox.enqueue(client, [
            { routingKey: 'wallet.created', payload: publicWallet(w), messageId: `wallet.created:${w.walletId}` },
            auditMessage('wallet.create', {
              resource: { type: 'wallet', id: w.walletId },
              userId: w.userId,
              status: 'success',
              before: null,
              after: { chain: w.chain, address: w.address, isActive: w.isActive, label: w.label },
              ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
            }),
          ]);
          return w;
        });
      } catch (e) {
        if (uniqueViolation(e) === 'wallets_one_active' && active === 'if-first') continue;
        throw e;
      }
    }
    throw new FleetError(ErrorCode.INTERNAL, 'unreachable');
  }

  return {
    'wallet.management.create': async (r: ParsedRequestOf<'wallet.management.create'>, ctx: HandlerContext): Promise<Wallet> => {
      const hash = requestHash(r);
      try {
        if (r.idempotencyKey) {
          const prior = await replay(r.userId, r.idempotencyKey, hash);
          if (prior) return prior;
        }
      } catch (e) {
        throw databaseError(e);
      }
      const walletId = r.idempotencyKey ? walletIdFor(r.userId, r.idempotencyKey) : randomUUID();
      // The key comes first: a crash after it leaves an unused KMS key (harmless, and reused by a
      // retry with the same idempotency key), never a wallet row without a usable key.
      const key = await custody.createKey(`wallet-${walletId}`, algorithmOf(r.chain));
      const row = {
        walletId,
        userId: r.userId,
        chain: r.chain,
        address: addressOf(r.chain, key.publicKey),
        label: r.label ?? null,
        kmsKeyVersion: key.keyVersionName,
        publicKey: key.publicKey,
      };
      try {
        return publicWallet(await insert(r, row, hash, ctx));
      } catch (e) {
        // The same idempotent create finished first elsewhere (another replica, a redelivery).
        const violated = uniqueViolation(e);
        if (r.idempotencyKey && (violated === 'wallets_pkey' || violated === 'create_requests_pkey')) {
          const prior = await replay(r.userId, r.idempotencyKey, hash).catch((err) => Promise.reject(databaseError(err)));
          if (prior) return prior;
        }
        throw databaseError(e);
      }
    },

    'wallet.management.list': async (r: ParsedRequestOf<'wallet.management.list'>) => {
      try {
        return { items: (await walletStore.list(pool, r.userId, r.chain)).map(publicWallet) };
      } catch (e) {
        throw databaseError(e);
      }
    },

    'wallet.management.get': async (r: ParsedRequestOf<'wallet.management.get'>): Promise<Wallet> => {
      let w: WalletRecord | undefined;
      try {
        w = await walletStore.get(pool, r.userId, r.walletId);
      } catch (e) {
        throw databaseError(e);
      }
      if (!w) throw notFound();
      return publicWallet(w);
    },

    'wallet.management.setActive': async (r: ParsedRequestOf<'wallet.management.setActive'>, ctx: HandlerContext): Promise<Wallet> => {
      try {
        return await inTransaction(pool, async (client) => {
          const w = await walletStore.get(client, r.userId, r.walletId, true);
          if (!w) throw notFound();
          if (w.isActive) return publicWallet(w);
          const previous = await walletStore.activate(client, w);
          await outbox.enqueue(client, auditMessage('wallet.setActive', {
            resource: { type: 'wallet', id: w.walletId },
            userId: w.userId,
            status: 'success',
            before: { activeWalletId: previous ?? null },
            after: { activeWalletId: w.walletId },
            ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
          }));
          return publicWallet({ ...w, isActive: true });
        });
      } catch (e) {
        throw databaseError(e);
      }
    },
  };
}
