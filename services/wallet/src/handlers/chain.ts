import { randomUUID } from 'node:crypto';
import {
  type Ed25519Signer,
  type Intent,
  type Secp256k1Signer,
  type SolanaAdapter,
  decodeAptosTransaction,
  decodeEvmTransaction,
  decodeSolanaTransaction,
  isValidAddress,
  signAptosRawTransaction,
  signEvmTransaction,
} from '@wallet-fleet/chains';
import { type Chain, ErrorCode, FleetError, type ParsedRequestOf, isFleetError, auditMessage } from '@wallet-fleet/contracts';
import type { HandlerContext } from '@wallet-fleet/messaging';
import type { Logger, RateLimiter, Redis } from '@wallet-fleet/service-kit';
import { type PolicyDecision, type PolicyGate, policyDenied } from '../policy/gate.js';
import type { TransferStore } from '../store/transfer-store.js';
import type { OwnedWallet, WalletStore } from '../store/wallet-store.js';
import { type TransferAudit, transferSol } from './transfer.js';

/** What signing needs of the KMS custody. */
export interface WalletSigner {
  signEd25519(keyVersionName: string, message: Uint8Array): Promise<Uint8Array>;
  signSecp256k1Digest(keyVersionName: string, digest32: Uint8Array): Promise<{ r: bigint; s: bigint }>;
}

/** Reads of native balances, one per chain (each behind its own breaker in app.ts). */
export interface BalanceReaders {
  SOL(address: string): Promise<bigint>;
  ETH(address: string): Promise<bigint>;
  APTOS(address: string): Promise<bigint>;
}

export interface ChainDeps {
  store: WalletStore;
  transfers: TransferStore;
  signer: WalletSigner;
  solana: Pick<SolanaAdapter, 'getTokenBalances' | 'buildTransfer' | 'signTransaction' | 'sendAndConfirm' | 'fate'>;
  balances: BalanceReaders;
  cache: Redis;
  cacheTtlMs: number;
  limiter: RateLimiter;
  confirmTimeoutMs: number;
  policy: PolicyGate;
  /** The chain ids this service signs for: any other is refused (replay protection). */
  chainIds: { ETH: number; APTOS: number };
}

/** What the audit event of a signing says about it: the decoded intent and the policy's decision. */
interface SigningFacts {
  intent?: Intent;
  decision?: PolicyDecision;
}

const NATIVE: Record<Chain, { decimals: number; symbol: string }> = {
  SOL: { decimals: 9, symbol: 'SOL' },
  ETH: { decimals: 18, symbol: 'ETH' },
  APTOS: { decimals: 8, symbol: 'APT' },
};

function kmsEd25519Signer(signer: WalletSigner, w: OwnedWallet): Ed25519Signer {
  return { publicKey: new Uint8Array(w.publicKey), sign: (m) => signer.signEd25519(w.kmsKeyVersion, m) };
}

function kmsSecp256k1Signer(signer: WalletSigner, w: OwnedWallet): Secp256k1Signer {
  return { publicKey: new Uint8Array(w.publicKey), signDigest: (d) => signer.signSecp256k1Digest(w.kmsKeyVersion, d) };
}

const balanceKey = (walletId: string) => `balance:${walletId}`;

/**
 * `wallet.balance.*` and `wallet.transaction.*`. Ownership first (WALLET_NOT_FOUND for a wallet of
 * another user), then a per-user rate limit on signing and transfers (RATE_LIMITED), then the
 * chain. Nothing reaches the key that was not decoded and allowed by the signing policy
 * (POLICY_DENIED). Every signing attempt, successful or not, leaves an audit event with the decoded
 * intent and the decision; a signature leaves the service only once its audit event is written
 * (see transferSol for transfers).
 */
export function createChainHandlers(d: ChainDeps) {
  async function owned(userId: string, walletId: string): Promise<OwnedWallet> {
    const w = await d.store.owned(userId, walletId);
    if (!w) throw new FleetError(ErrorCode.WALLET_NOT_FOUND, 'wallet not found');
    return w;
  }

  async function limit(userId: string): Promise<void> {
    const r = await d.limiter.take(userId);
    if (!r.allowed) {
      throw new FleetError(ErrorCode.RATE_LIMITED, `too many signing requests; retry in ${Math.ceil(r.resetMs / 1000)} s`, {
        details: { retryAfterMs: r.resetMs },
      });
    }
  }

  /** Ownership and the rate limit at once (no wait on one round trip before the other); ownership's error first. */
  async function ownedWithinLimit(userId: string, walletId: string): Promise<OwnedWallet> {
    const [w, l] = await Promise.allSettled([owned(userId, walletId), limit(userId)]);
    if (w.status === 'rejected') throw w.reason;
    if (l.status === 'rejected') throw l.reason;
    return w.value;
  }

  const auditBase = (w: OwnedWallet, ctx: HandlerContext) => ({
    resource: { type: 'wallet', id: w.walletId },
    userId: w.userId,
    ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
  });
  const auditError = (err: FleetError) => ({ code: err.code, message: err.message, retryable: err.retryable });
  const factsOf = (f: SigningFacts) => ({ ...(f.intent ? { intent: f.intent } : {}), ...(f.decision ? { decision: f.decision } : {}) });

  /**
   * Decode → policy → key: `sign` runs only for an intent the policy allows, with its spend reserved
   * under `ref`; a signing that fails gives the reservation back (nothing signed cannot reach the
   * chain). Throws POLICY_DENIED, what `sign` throws, UNAVAILABLE/INTERNAL (database).
   */
  async function governed<T>(w: OwnedWallet, logger: Logger, facts: SigningFacts, intent: Intent, ref: string, sign: () => Promise<T>): Promise<T> {
    facts.intent = intent;
    facts.decision = await d.policy.decide(w, intent, ref);
    if (facts.decision.denial) throw policyDenied(facts.decision.denial);
    try {
      return await sign();
    } catch (e) {
      // A release that fails leaves the amount counted: the safe side; the caller gets the signing's own error.
      await d.policy.release(ref).catch((err: unknown) => logger.warn({ err, ref }, 'policy reservation of a failed signing not released'));
      throw e;
    }
  }

  /**
   * Signs and audits the outcome either way. The signature is returned only once its audit event
   * is written: when that write fails, the call fails UNAVAILABLE and the signature never leaves.
   * The event of a failed attempt that cannot be written is logged (the caller still gets the real error).
   */
  async function auditedSign<T extends { hash?: string | undefined; signedTransaction: string }>(
    w: OwnedWallet,
    ctx: HandlerContext,
    facts: SigningFacts,
    run: () => Promise<T>,
  ): Promise<T> {
    const action = 'wallet.sign';
    let result: T;
    try {
      result = await run();
    } catch (e) {
      const err = isFleetError(e) ? e : new FleetError(ErrorCode.INTERNAL, 'unexpected failure', { cause: e });
      const message = auditMessage('wallet', action, {
        ...auditBase(w, ctx),
        status: 'failed',
        after: { chain: w.chain, ...factsOf(facts) },
        error: auditError(err),
      });
      await d.store
        .record(message)
        .catch((auditErr: unknown) =>
          ctx.logger.error({ err: auditErr, auditEventId: message.messageId }, 'audit event of a failed signing attempt could not be written'),
        );
      throw e;
    }
    await d.store.record(
      auditMessage('wallet', action, { ...auditBase(w, ctx), status: 'success', after: { chain: w.chain, hash: result.hash ?? null, ...factsOf(facts) } }),
    );
    return result;
  }

  function transferAudit(w: OwnedWallet, ctx: HandlerContext, recipient: string, amount: string, facts: SigningFacts): TransferAudit {
    const action = 'wallet.transferSol';
    // A getter: the intent and decision are known only once the transaction is built.
    const after = () => ({ chain: w.chain, recipient, amount, ...factsOf(facts) });
    return {
      signed: (signature) => auditMessage('wallet', action, { ...auditBase(w, ctx), status: 'started', after: { ...after(), hash: signature } }),
      confirmed: (signature, extra) =>
        auditMessage('wallet', action, { ...auditBase(w, ctx), status: 'success', after: { ...after(), ...extra, hash: signature } }),
      failed: (err, signature) =>
        auditMessage('wallet', action, {
          ...auditBase(w, ctx),
          status: 'failed',
          after: { ...after(), ...(signature ? { hash: signature } : {}) },
          error: auditError(err),
        }),
    };
  }

  return {
    'wallet.balance.get': async (r: ParsedRequestOf<'wallet.balance.get'>) => {
      const w = await owned(r.userId, r.walletId);
      const cached = await d.cache.get(balanceKey(w.walletId)).catch(() => null);
      const amount = cached ?? (await d.balances[w.chain](w.address)).toString();
      if (cached === null) await d.cache.set(balanceKey(w.walletId), amount, 'PX', d.cacheTtlMs).catch(() => undefined);
      return { walletId: w.walletId, chain: w.chain, amount, ...NATIVE[w.chain] };
    },

    'wallet.balance.getTokens': async (r: ParsedRequestOf<'wallet.balance.getTokens'>) => {
      const w = await owned(r.userId, r.walletId);
      if (w.chain !== 'SOL') throw new FleetError(ErrorCode.UNSUPPORTED_CHAIN, `token balances are available for SOL wallets only (not ${w.chain})`);
      const tokens = await d.solana.getTokenBalances(w.address);
      return {
        walletId: w.walletId,
        chain: w.chain,
        tokens: tokens.map((t) => ({ mint: t.mint, account: t.account, amount: t.amount.toString(), decimals: t.decimals })),
      };
    },

    'wallet.transaction.transferSol': async (r: ParsedRequestOf<'wallet.transaction.transferSol'>, ctx: HandlerContext) => {
      const w = await owned(r.userId, r.walletId);
      if (w.chain !== 'SOL') throw new FleetError(ErrorCode.UNSUPPORTED_CHAIN, `transferSol needs a SOL wallet, not ${w.chain}`);
      if (!isValidAddress('SOL', r.recipient)) throw new FleetError(ErrorCode.INVALID_RECIPIENT, 'recipient is not a Solana address');
      if (BigInt(r.amount) <= 0n) throw FleetError.validation([{ path: 'amount', message: 'must be at least 1 lamport' }]);
      await limit(r.userId);
      const facts: SigningFacts = {};
      // One reservation per idempotent transfer, whatever its retries sign; a fresh one otherwise.
      const ref = `transfer:${w.walletId}:${r.idempotencyKey ?? randomUUID()}`;
      try {
        return await transferSol(
          { transfers: d.transfers, record: (m) => d.store.record(m), solana: d.solana, confirmTimeoutMs: d.confirmTimeoutMs },
          {
            walletId: w.walletId,
            from: w.address,
            recipient: r.recipient,
            amount: r.amount,
            idempotencyKey: r.idempotencyKey,
            sign: (unsigned) =>
              governed(w, ctx.logger, facts, decodeSolanaTransaction(unsigned, { wallet: w.address }), ref, () =>
                d.solana.signTransaction(unsigned, kmsEd25519Signer(d.signer, w)),
              ),
            audit: transferAudit(w, ctx, r.recipient, r.amount, facts),
            logger: ctx.logger,
          },
        );
      } finally {
        // Whatever happened, the cached balance may be stale now.
        await d.cache.del(balanceKey(w.walletId)).catch(() => undefined);
      }
    },

    'wallet.transaction.sign': async (r: ParsedRequestOf<'wallet.transaction.sign'>, ctx: HandlerContext) => {
      const w = await ownedWithinLimit(r.userId, r.walletId);
      const facts: SigningFacts = {};
      // A raw signature may be broadcast by anyone at any time: its spend is never given back once signed.
      const ref = `sign:${randomUUID()}`;
      return auditedSign(w, ctx, facts, async () => {
        switch (w.chain) {
          case 'SOL': {
            const bytes = decodeBase64(r.transaction);
            const signed = await governed(w, ctx.logger, facts, decodeSolanaTransaction(bytes, { wallet: w.address }), ref, () =>
              d.solana.signTransaction(bytes, kmsEd25519Signer(d.signer, w)),
            );
            return { signedTransaction: Buffer.from(signed).toString('base64') };
          }
          case 'ETH': {
            const intent = decodeEvmTransaction(r.transaction, { from: w.address, chainId: d.chainIds.ETH });
            const { signedTransaction, hash } = await governed(w, ctx.logger, facts, intent, ref, () =>
              signEvmTransaction(r.transaction, kmsSecp256k1Signer(d.signer, w)),
            );
            return { signedTransaction, hash };
          }
          case 'APTOS': {
            const bytes = decodeBase64(r.transaction);
            const intent = decodeAptosTransaction(bytes, { chainId: d.chainIds.APTOS });
            const signed = await governed(w, ctx.logger, facts, intent, ref, () => signAptosRawTransaction(bytes, kmsEd25519Signer(d.signer, w)));
            return { signedTransaction: Buffer.from(signed).toString('base64') };
          }
        }
      });
    },
  };
}

function decodeBase64(s: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw FleetError.validation([{ path: 'transaction', message: 'expected base64' }]);
  return Buffer.from(s, 'base64');
}
