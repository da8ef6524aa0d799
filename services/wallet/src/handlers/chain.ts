import { createHash, randomUUID } from 'node:crypto';
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
import {
  type ApprovableOperation,
  type Approval,
  type Chain,
  ErrorCode,
  FleetError,
  type ParsedRequestOf,
  type ResultOf,
  isFleetError,
  auditMessage,
} from '@wallet-fleet/contracts';
import type { HandlerContext } from '@wallet-fleet/messaging';
import type { Logger, RateLimiter, Redis } from '@wallet-fleet/service-kit';
import type { ApprovalNeed } from '../policy/engine.js';
import { type PolicyDecision, type PolicyGate, policyDenied } from '../policy/gate.js';
import type { ApprovalStore } from '../store/approval-store.js';
import type { TransferStore } from '../store/transfer-store.js';
import type { WalletRecord, WalletStore } from '../store/wallet-store.js';
import { type ApprovalExecutors, approvalMessage } from './approvals.js';
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
  approvals: Pick<ApprovalStore, 'request'>;
  /** How long a request waits for its approvers. */
  approvalTtlMs: number;
}

/** What the audit event of a signing says about it: the decoded intent, the policy's decision, the approval it executes. */
interface SigningFacts {
  intent?: Intent;
  decision?: PolicyDecision;
  approvalId?: string;
}

/**
 * How a signing runs: as a request (`held`: kept for approval when the policy asks for it, under a
 * key that a repeat of the request finds again), or as the execution of an approved request.
 */
type Mode = { held: { operation: ApprovableOperation; requestKey: string; request: Record<string, unknown>; requestedBy: string } } | { approvalId: string };

const NATIVE: Record<Chain, { decimals: number; symbol: string }> = {
  SOL: { decimals: 9, symbol: 'SOL' },
  ETH: { decimals: 18, symbol: 'ETH' },
  APTOS: { decimals: 8, symbol: 'APT' },
};

function kmsEd25519Signer(signer: WalletSigner, w: WalletRecord): Ed25519Signer {
  return { publicKey: new Uint8Array(w.publicKey), sign: (m) => signer.signEd25519(w.kmsKeyVersion, m) };
}

function kmsSecp256k1Signer(signer: WalletSigner, w: WalletRecord): Secp256k1Signer {
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
  async function owned(userId: string, walletId: string): Promise<WalletRecord> {
    const w = await d.store.get(userId, walletId);
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

  const auditBase = (w: WalletRecord, ctx: HandlerContext) => ({
    resource: { type: 'wallet', id: w.walletId },
    userId: w.userId,
    ...(ctx.correlationId ? { correlationId: ctx.correlationId } : {}),
  });
  const auditError = (err: FleetError) => ({ code: err.code, message: err.message, retryable: err.retryable });
  const factsOf = (f: SigningFacts) => ({
    ...(f.intent ? { intent: f.intent } : {}),
    ...(f.decision ? { decision: f.decision } : {}),
    ...(f.approvalId ? { approvalId: f.approvalId } : {}),
  });

  /**
   * Keeps a request above an approval threshold (or finds it kept, when repeated) and answers
   * APPROVAL_REQUIRED naming it; `wallet.approval.requested` is written with a new one.
   */
  async function approvalRequired(w: WalletRecord, held: Extract<Mode, { held: unknown }>['held'], intent: Intent, need: ApprovalNeed): Promise<FleetError> {
    const { approval } = await d.approvals.request(
      {
        approvalId: randomUUID(),
        ...held,
        userId: w.userId,
        walletId: w.walletId,
        chain: w.chain,
        intent: intent as unknown as Record<string, unknown>,
        rule: { ...need },
        required: need.approvers,
        ttlMs: d.approvalTtlMs,
      },
      (a) => [approvalMessage('wallet.approval.requested', a)],
    );
    return new FleetError(
      ErrorCode.APPROVAL_REQUIRED,
      `above the ${need.scope} approval threshold of ${need.threshold} ${need.asset}: ${approval.required} distinct approvers must approve ${approval.approvalId} (now ${approval.status})`,
      { details: approvalDetails(approval) },
    );
  }

  /**
   * Decode → policy → key: `sign` runs only for an intent the policy allows, with its spend reserved
   * under `ref`; a signing that fails gives the reservation back (nothing signed cannot reach the
   * chain). Above an approval threshold a request is kept instead (nothing signed); the execution
   * of an approved request passes the policy again, approval aside. Throws POLICY_DENIED,
   * APPROVAL_REQUIRED, what `sign` throws, UNAVAILABLE/INTERNAL (database).
   */
  async function governed<T>(
    w: WalletRecord,
    logger: Logger,
    facts: SigningFacts,
    intent: Intent,
    ref: string,
    mode: Mode,
    sign: () => Promise<T>,
  ): Promise<T> {
    facts.intent = intent;
    facts.decision = await d.policy.decide(w, intent, ref, { approved: 'approvalId' in mode });
    if (facts.decision.denial) throw policyDenied(facts.decision.denial);
    if (facts.decision.approval && 'held' in mode) throw await approvalRequired(w, mode.held, intent, facts.decision.approval);
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
    w: WalletRecord,
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

  function transferAudit(w: WalletRecord, ctx: HandlerContext, recipient: string, amount: string, facts: SigningFacts): TransferAudit {
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

  /**
   * `transferSol` as a request (`mode.held`) or as the execution of an approved one (no rate limit:
   * the request was counted when it was made).
   */
  async function transferSolAs(r: ParsedRequestOf<'wallet.transaction.transferSol'>, ctx: HandlerContext, mode: Mode): Promise<TransferResult> {
    const w = await owned(r.userId, r.walletId);
    if (w.chain !== 'SOL') throw new FleetError(ErrorCode.UNSUPPORTED_CHAIN, `transferSol needs a SOL wallet, not ${w.chain}`);
    if (!isValidAddress('SOL', r.recipient)) throw new FleetError(ErrorCode.INVALID_RECIPIENT, 'recipient is not a Solana address');
    if (BigInt(r.amount) <= 0n) throw FleetError.validation([{ path: 'amount', message: 'must be at least 1 lamport' }]);
    if ('held' in mode) await limit(r.userId);
    const facts: SigningFacts = 'approvalId' in mode ? { approvalId: mode.approvalId } : {};
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
            governed(w, ctx.logger, facts, decodeSolanaTransaction(unsigned, { wallet: w.address }), ref, mode, () =>
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
  }

  /** `sign` as a request (`mode.held`) or as the execution of an approved one (no rate limit). */
  async function signAs(r: ParsedRequestOf<'wallet.transaction.sign'>, ctx: HandlerContext, mode: Mode): Promise<ResultOf<'wallet.transaction.sign'>> {
    const w = await owned(r.userId, r.walletId);
    if ('held' in mode) await limit(r.userId);
    const facts: SigningFacts = 'approvalId' in mode ? { approvalId: mode.approvalId } : {};
    // A raw signature may be broadcast by anyone at any time: its spend is never given back once signed.
    const ref = `sign:${randomUUID()}`;
    return auditedSign(w, ctx, facts, async () => {
      switch (w.chain) {
        case 'SOL': {
          const bytes = decodeBase64(r.transaction);
          const signed = await governed(w, ctx.logger, facts, decodeSolanaTransaction(bytes, { wallet: w.address }), ref, mode, () =>
            d.solana.signTransaction(bytes, kmsEd25519Signer(d.signer, w)),
          );
          return { signedTransaction: Buffer.from(signed).toString('base64') };
        }
        case 'ETH': {
          const intent = decodeEvmTransaction(r.transaction, { from: w.address, chainId: d.chainIds.ETH });
          const { signedTransaction, hash } = await governed(w, ctx.logger, facts, intent, ref, mode, () =>
            signEvmTransaction(r.transaction, kmsSecp256k1Signer(d.signer, w)),
          );
          return { signedTransaction, hash };
        }
        case 'APTOS': {
          const bytes = decodeBase64(r.transaction);
          const intent = decodeAptosTransaction(bytes, { chainId: d.chainIds.APTOS });
          const signed = await governed(w, ctx.logger, facts, intent, ref, mode, () => signAptosRawTransaction(bytes, kmsEd25519Signer(d.signer, w)));
          return { signedTransaction: Buffer.from(signed).toString('base64') };
        }
      }
    });
  }

  /** The broker user of a request: the one who can never approve it. */
  const requester = (ctx: HandlerContext) => ctx.caller.user ?? '';

  /**
   * How an approved request is executed, per operation: through the same path as the request, the
   * policy checked again (approval aside). A transfer runs under an idempotency key derived from
   * the approval, so however often it is executed, one transfer reaches the chain.
   */
  const executors: ApprovalExecutors = {
    'wallet.transaction.transferSol': (a, ctx) =>
      transferSolAs({ ...(a.request as ParsedRequestOf<'wallet.transaction.transferSol'>), idempotencyKey: `approval:${a.approvalId}` }, ctx, {
        approvalId: a.approvalId,
      }),
    'wallet.transaction.sign': (a, ctx) => signAs(a.request as ParsedRequestOf<'wallet.transaction.sign'>, ctx, { approvalId: a.approvalId }),
  };

  const handlers = {
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

    // A request with an idempotency key names one transfer: repeated, it finds the same approval.
    'wallet.transaction.transferSol': (r: ParsedRequestOf<'wallet.transaction.transferSol'>, ctx: HandlerContext) =>
      transferSolAs(r, ctx, {
        held: {
          operation: 'wallet.transaction.transferSol',
          requestKey: `transferSol:${r.walletId}:${r.idempotencyKey ?? randomUUID()}`,
          request: r,
          requestedBy: requester(ctx),
        },
      }),

    // The same bytes to sign are the same request.
    'wallet.transaction.sign': (r: ParsedRequestOf<'wallet.transaction.sign'>, ctx: HandlerContext) =>
      signAs(r, ctx, {
        held: {
          operation: 'wallet.transaction.sign',
          requestKey: `sign:${r.walletId}:${createHash('sha256').update(r.transaction).digest('hex')}`,
          request: r,
          requestedBy: requester(ctx),
        },
      }),
  };
  return { handlers, executors };
}

type TransferResult = ResultOf<'wallet.transaction.transferSol'>;

/** What APPROVAL_REQUIRED says of the kept request. */
const approvalDetails = (a: Approval) => ({
  approvalId: a.approvalId,
  status: a.status,
  required: a.required,
  approvals: a.approvedBy.length,
  expiresAt: a.expiresAt,
});

function decodeBase64(s: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw FleetError.validation([{ path: 'transaction', message: 'expected base64' }]);
  return Buffer.from(s, 'base64');
}
