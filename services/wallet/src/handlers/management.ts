import { createHash, randomUUID } from 'node:crypto';
import { aptosAddress, ethereumAddress, solanaAddress } from '@wallet-fleet/chains';
import { type Chain, ErrorCode, FleetError, type ParsedRequestOf, type Wallet, auditMessage } from '@wallet-fleet/contracts';
import type { HandlerContext } from '@wallet-fleet/messaging';
import { type KeyCustody, algorithmOf } from '../ports.js';
import { type NewWallet, type PoolKind, type WalletRecord, type WalletStore, publicWallet } from '../store/wallet-store.js';

/** What a create tells the key pool (the refiller and its metrics). */
export interface KeyPoolHooks {
  /** A create took a key of `kind` from the pool. */
  taken(kind: PoolKind): void;
  /** A create found no key of `kind` and creates one synchronously. */
  empty(kind: PoolKind): void;
}

export interface ManagementDeps {
  store: WalletStore;
  custody: KeyCustody;
  /** Absent: no key pool, every create creates its key in KMS. */
  pool?: KeyPoolHooks;
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
  createHash('sha256')
    .update(JSON.stringify([r.chain, r.label ?? null]))
    .digest('hex');

const notFound = () => new FleetError(ErrorCode.WALLET_NOT_FOUND, 'wallet not found');

/**
 * `wallet.management.*`. A wallet of another user answers WALLET_NOT_FOUND exactly like one that
 * does not exist. Database failures are UNAVAILABLE (retryable); KMS failures come from the custody
 * (UNAVAILABLE, SIGNING_FAILED).
 */
export function createManagementHandlers({ store, custody, pool }: ManagementDeps) {
  async function replay(userId: string, key: string, hash: string): Promise<Wallet | undefined> {
    const prior = await store.findCreateRequest(userId, key);
    if (!prior) return undefined;
    if (prior.requestHash !== hash) {
      throw new FleetError(ErrorCode.IDEMPOTENCY_CONFLICT, 'idempotencyKey was used before with another payload');
    }
    const w = await store.get(userId, prior.walletId);
    if (!w) throw new FleetError(ErrorCode.INTERNAL, 'idempotency record without its wallet');
    return publicWallet(w);
  }

  return {
    'wallet.management.create': async (r: ParsedRequestOf<'wallet.management.create'>, ctx: HandlerContext): Promise<Wallet> => {
      // Only an idempotent create is compared with an earlier one: the others need no hash.
      const request = r.idempotencyKey ? { key: r.idempotencyKey, hash: requestHash(r) } : undefined;
      const walletId = request ? walletIdFor(r.userId, request.key) : randomUUID();
      const messagesFor = (w: WalletRecord) => [
        { routingKey: 'wallet.created', payload: publicWallet(w), messageId: `wallet.created:${w.walletId}` },
        auditMessage('wallet', 'wallet.create', {
          resource: { type: 'wallet', id: w.walletId },
          userId: w.userId,
          status: 'success',
          before: null,
          after: { chain: w.chain, address: w.address, isActive: w.isActive, label: w.label },
          ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
        }),
      ];
      const algorithm = algorithmOf(r.chain);
      let created: WalletRecord | 'duplicate' | 'pool-empty' = 'pool-empty';
      if (pool) {
        // No read of the idempotency record first: a repeated create names the same wallet id, so
        // its insert collides (`duplicate`, nothing written, the key stays in the pool) and is
        // answered from the record below.
        const kind: PoolKind = { algorithm, protectionLevel: custody.protectionLevelOf(algorithm) };
        const draft = { walletId, userId: r.userId, chain: r.chain, label: r.label ?? null };
        created = await store.insertWalletFromPool(draft, kind, (publicKey) => addressOf(r.chain, publicKey), request, messagesFor);
        if (created === 'pool-empty') pool.empty(kind);
        else if (created !== 'duplicate') pool.taken(kind);
      }
      if (created === 'pool-empty') {
        // Before a KMS call: a repeated create is answered from its record.
        if (request) {
          const prior = await replay(r.userId, request.key, request.hash);
          if (prior) return prior;
        }
        // No pooled key: create one now. The key comes first: a crash after it leaves an unused KMS
        // key (harmless, and reused by a retry with the same idempotency key), never a wallet row
        // without a usable key.
        const key = await custody.createKey(`wallet-${walletId}`, algorithm);
        const row: NewWallet = {
          walletId,
          userId: r.userId,
          chain: r.chain,
          address: addressOf(r.chain, key.publicKey),
          label: r.label ?? null,
          kmsKeyVersion: key.keyVersionName,
          publicKey: key.publicKey,
        };
        created = await store.insertWallet(row, request, messagesFor);
      }
      if (created !== 'duplicate') return publicWallet(created);
      // The same idempotent create finished first (a retry, another replica, a redelivery).
      const prior = await replay(r.userId, request!.key, request!.hash);
      if (!prior) throw new FleetError(ErrorCode.INTERNAL, 'idempotent create collided but left no record');
      return prior;
    },

    'wallet.management.list': async (r: ParsedRequestOf<'wallet.management.list'>) => ({
      items: (await store.list(r.userId, r.chain)).map(publicWallet),
    }),

    'wallet.management.get': async (r: ParsedRequestOf<'wallet.management.get'>): Promise<Wallet> => {
      const w = await store.get(r.userId, r.walletId);
      if (!w) throw notFound();
      return publicWallet(w);
    },

    'wallet.management.setActive': async (r: ParsedRequestOf<'wallet.management.setActive'>, ctx: HandlerContext): Promise<Wallet> => {
      const w = await store.activate(r.userId, r.walletId, (w, previous) => [
        auditMessage('wallet', 'wallet.setActive', {
          resource: { type: 'wallet', id: w.walletId },
          userId: w.userId,
          status: 'success',
          before: { activeWalletId: previous ?? null },
          after: { activeWalletId: w.walletId },
          ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
        }),
      ]);
      if (!w) throw notFound();
      return publicWallet(w);
    },
  };
}
