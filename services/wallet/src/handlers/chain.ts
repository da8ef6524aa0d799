import { createHash, randomUUID } from 'node:crypto';
import {
  type Ed25519Signer,
  type EvmAdapter,
  type Intent,
  type Secp256k1Signer,
  type SolanaAdapter,
  decodeAptosTransaction,
  decodeEvmTransaction,
  decodeSolanaTransaction,
  ethereumAddress,
  evmTransactionHash,
  isValidAddress,
  parseSolanaTransaction,
  signAptosRawTransaction,
  signEvmTransaction,
  transactionSignature,
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
import type { OwnedWallet, WalletStore } from '../store/wallet-store.js';
import { type ApprovalExecutors, approvalMessage } from './approvals.js';
import { ExecutedOnApproval, type TransferAudit, type TransferRail, transfer } from './transfer.js';

/** What signing needs of the KMS custody. */
export interface WalletSigner {
  /** Verifies the signature against the key version's public key, which must be `expectedPublicKey`. */
  signEd25519(keyVersionName: string, message: Uint8Array, expectedPublicKey: Uint8Array): Promise<Uint8Array>;
  /** A low-s signature with its recovery bit, recovered to the key version's public key, whose address must be `expectedAddress`. */
  signEthereumDigest(keyVersionName: string, digest32: Uint8Array, expectedAddress: string): Promise<{ r: bigint; s: bigint; yParity: 0 | 1 }>;
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
  solana: Pick<SolanaAdapter, 'getTokenBalances' | 'buildTransfer' | 'buildTokenTransfer' | 'signTransaction' | 'sendAndConfirm' | 'fate'>;
  evm: Pick<EvmAdapter, 'buildTransfer' | 'sendRawTransaction' | 'fate' | 'getTransactionCount'>;
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
type Mode =
  | { held: { operation: ApprovableOperation; requestKey: () => string; request: Record<string, unknown>; requestedBy: string } }
  | { approvalId: string };

const NATIVE: Record<Chain, { decimals: number; symbol: string }> = {
  SOL: { decimals: 9, symbol: 'SOL' },
  ETH: { decimals: 18, symbol: 'ETH' },
  APTOS: { decimals: 8, symbol: 'APT' },
};

// The custody verifies each signature against the key version's public key and checks that key is
// the wallet's: the chain adapter need not verify it a second time.
function kmsEd25519Signer(signer: WalletSigner, w: OwnedWallet): Ed25519Signer {
  const publicKey = new Uint8Array(w.publicKey);
  return { publicKey, verifiesAgainstPublicKey: true, sign: (m) => signer.signEd25519(w.kmsKeyVersion, m, publicKey) };
}

// The custody finds the recovery bit by recovering the key version's public key, after checking
// that key has the address of the wallet's key: the chain adapter need not recover it again.
function kmsSecp256k1Signer(signer: WalletSigner, w: OwnedWallet): Secp256k1Signer {
  const publicKey = new Uint8Array(w.publicKey);
  const address = ethereumAddress(publicKey);
  return { publicKey, verifiesAgainstPublicKey: true, signDigest: (d) => signer.signEthereumDigest(w.kmsKeyVersion, d, address) };
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
  const factsOf = (f: SigningFacts) => ({
    ...(f.intent ? { intent: f.intent } : {}),
    ...(f.decision ? { decision: f.decision } : {}),
    ...(f.approvalId ? { approvalId: f.approvalId } : {}),
  });

  /**
   * Keeps a request above an approval threshold (or finds it kept, when repeated) and answers
   * APPROVAL_REQUIRED naming it; `wallet.approval.requested` is written with a new one. A repeat
   * whose approval has ended gets its end instead (see `endOf`).
   */
  async function approvalRequired(
    w: OwnedWallet,
    held: Extract<Mode, { held: unknown }>['held'],
    intent: Intent,
    need: ApprovalNeed,
  ): Promise<FleetError | ExecutedOnApproval> {
    const { requestKey, ...request } = held;
    const { approval } = await d.approvals.request(
      {
        approvalId: randomUUID(),
        ...request,
        requestKey: requestKey(),
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
    return (
      endOf(approval) ??
      new FleetError(
        ErrorCode.APPROVAL_REQUIRED,
        `above the ${need.scope} approval threshold of ${need.threshold} ${need.asset}: ${approval.required} distinct approvers must approve ${approval.approvalId} (now ${approval.status})`,
        { details: approvalDetails(approval) },
      )
    );
  }

  /**
   * Decode → policy → key: `sign` runs only for an intent the policy allows, with its spend reserved
   * under `ref`; a signing that fails gives the reservation back (nothing signed cannot reach the
   * chain). Above an approval threshold a request is kept instead (nothing signed); the execution
   * of an approved request passes the policy again, approval aside. Throws POLICY_DENIED,
   * APPROVAL_REQUIRED, what `sign` throws, UNAVAILABLE/INTERNAL (database).
   */
  async function governed<T>(w: OwnedWallet, logger: Logger, facts: SigningFacts, intent: Intent, ref: string, mode: Mode, sign: () => Promise<T>): Promise<T> {
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
      // Nothing was signed: the execution of the approval wrote its own event.
      if (e instanceof ExecutedOnApproval) throw e;
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

  function transferAudit(action: string, w: OwnedWallet, ctx: HandlerContext, r: TransferBody, facts: SigningFacts): TransferAudit {
    // A getter: the intent and decision are known only once the transaction is built.
    const after = () => ({
      chain: w.chain,
      recipient: r.recipient,
      amount: r.amount,
      ...(r.asset.type === 'token' ? { asset: r.asset } : {}),
      ...factsOf(facts),
    });
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
   * How a transfer of `r` is built, signed and sent on the wallet's chain. Every built transaction
   * is decoded and put before the policy (`governed`) exactly as a raw signing is.
   * Throws UNSUPPORTED_CHAIN (Aptos), VALIDATION_FAILED (an asset of another chain).
   */
  function railOf(w: OwnedWallet, r: TransferBody, logger: Logger, facts: SigningFacts, ref: string, mode: Mode): TransferRail {
    const amount = BigInt(r.amount);
    switch (w.chain) {
      case 'SOL': {
        const { asset } = r;
        if (asset.type === 'token' && !('mint' in asset))
          throw FleetError.validation([{ path: 'asset', message: 'a SOL wallet sends SPL tokens: give `mint`' }]);
        const build = () =>
          asset.type === 'native'
            ? d.solana.buildTransfer({ from: w.address, to: r.recipient, lamports: amount })
            : d.solana.buildTokenTransfer({ from: w.address, to: r.recipient, mint: asset.mint, amount });
        return {
          sign: async () => {
            const unsigned = parseSolanaTransaction(await build());
            return governed(w, logger, facts, decodeSolanaTransaction(unsigned, { wallet: w.address }), ref, mode, () =>
              d.solana.signTransaction(unsigned, kmsEd25519Signer(d.signer, w)),
            );
          },
          idOf: transactionSignature,
          sendAndConfirm: (signed) => d.solana.sendAndConfirm(signed, { timeoutMs: d.confirmTimeoutMs }),
          fate: (signed) => d.solana.fate(signed),
        };
      }
      case 'ETH': {
        const { asset } = r;
        if (asset.type === 'token' && !('contract' in asset))
          throw FleetError.validation([{ path: 'asset', message: 'an ETH wallet sends ERC-20 tokens: give `contract`' }]);
        const token = asset.type === 'token' ? asset.contract : undefined;
        return {
          sign: async (nonce) => {
            const unsigned = await d.evm.buildTransfer({
              from: w.address,
              to: r.recipient,
              amount,
              nonce: nonce ?? 0,
              chainId: d.chainIds.ETH,
              ...(token ? { token } : {}),
            });
            const intent = decodeEvmTransaction(unsigned, { from: w.address, chainId: d.chainIds.ETH });
            const { signedTransaction } = await governed(w, logger, facts, intent, ref, mode, () =>
              signEvmTransaction(unsigned, kmsSecp256k1Signer(d.signer, w)),
            );
            return hexBytes(signedTransaction);
          },
          idOf: evmTransactionHash,
          sendAndConfirm: async (signed) => (await d.evm.sendRawTransaction(bytesHex(signed), { timeoutMs: d.confirmTimeoutMs })).hash,
          fate: (signed) => d.evm.fate(bytesHex(signed)),
          chainNonce: () => d.evm.getTransactionCount(w.address),
        };
      }
      case 'APTOS':
        throw new FleetError(
          ErrorCode.UNSUPPORTED_CHAIN,
          'typed transfers are built for SOL and ETH wallets only; an APTOS wallet signs what it is given (wallet.transaction.sign)',
        );
    }
  }

  /**
   * `wallet.transaction.transfer`, and `transferSol` as its SOL-native alias (audited as `action`), as
   * a request (`mode.held`) or as the execution of an approved one (no rate limit: the request was
   * counted when it was made).
   */
  async function typedTransferAs(action: string, r: TransferBody, ctx: HandlerContext, mode: Mode): Promise<TransferResult> {
    const w = 'held' in mode ? await ownedWithinLimit(r.userId, r.walletId) : await owned(r.userId, r.walletId);
    if (action === 'wallet.transferSol' && w.chain !== 'SOL')
      throw new FleetError(ErrorCode.UNSUPPORTED_CHAIN, `transferSol needs a SOL wallet, not ${w.chain}`);
    if (!isValidAddress(w.chain, r.recipient))
      throw new FleetError(ErrorCode.INVALID_RECIPIENT, `recipient is not a${w.chain === 'ETH' ? 'n' : ''} ${w.chain} address`);
    if (BigInt(r.amount) <= 0n) throw FleetError.validation([{ path: 'amount', message: 'must be at least 1 base unit' }]);
    const facts: SigningFacts = 'approvalId' in mode ? { approvalId: mode.approvalId } : {};
    // One reservation per idempotent transfer, whatever its retries sign; a fresh one otherwise.
    const ref = `transfer:${w.walletId}:${r.idempotencyKey ?? randomUUID()}`;
    const rail = railOf(w, r, ctx.logger, facts, ref, mode);
    try {
      return await transfer(
        { transfers: d.transfers, record: (m) => d.store.record(m), lockWaitMs: d.confirmTimeoutMs + 10_000 },
        {
          walletId: w.walletId,
          recipient: r.recipient,
          amount: r.amount,
          asset: assetKey(r.asset),
          idempotencyKey: r.idempotencyKey,
          rail,
          audit: transferAudit(action, w, ctx, r, facts),
          logger: ctx.logger,
        },
      );
    } catch (e) {
      // A repeat of a transfer that its approval executed: that transfer, as the approval recorded it.
      if (e instanceof ExecutedOnApproval) return { ...(e.result as TransferResult), source: 'record', checkedOnChain: false };
      throw e;
    } finally {
      // Whatever happened, the cached balance may be stale now.
      await d.cache.del(balanceKey(w.walletId)).catch(() => undefined);
    }
  }

  /** `sign` as a request (`mode.held`) or as the execution of an approved one (no rate limit). */
  async function signAs(r: ParsedRequestOf<'wallet.transaction.sign'>, ctx: HandlerContext, mode: Mode): Promise<ResultOf<'wallet.transaction.sign'>> {
    const w = 'held' in mode ? await ownedWithinLimit(r.userId, r.walletId) : await owned(r.userId, r.walletId);
    const facts: SigningFacts = 'approvalId' in mode ? { approvalId: mode.approvalId } : {};
    // A raw signature may be broadcast by anyone at any time: its spend is never given back once signed.
    const ref = `sign:${randomUUID()}`;
    const signing = auditedSign(w, ctx, facts, async () => {
      switch (w.chain) {
        case 'SOL': {
          // Read once, for the decoding and the signing.
          const tx = parseSolanaTransaction(decodeBase64(r.transaction));
          const signed = await governed(w, ctx.logger, facts, decodeSolanaTransaction(tx, { wallet: w.address }), ref, mode, () =>
            d.solana.signTransaction(tx, kmsEd25519Signer(d.signer, w)),
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
    // A repeat of a signing that its approval executed: the signature kept on the approval.
    return signing.catch((e: unknown) => {
      if (e instanceof ExecutedOnApproval) return e.result as ResultOf<'wallet.transaction.sign'>;
      throw e;
    });
  }

  /** A request kept for approval when the policy asks for it; its sender (broker user) can never approve it. */
  // The key is computed only for a request that is kept (a hash of the bytes, for a signing).
  const held = (operation: ApprovableOperation, requestKey: () => string, request: Record<string, unknown>, ctx: HandlerContext): Mode => ({
    held: { operation, requestKey, request, requestedBy: ctx.caller.user ?? '' },
  });

  /**
   * How an approved request is executed, per operation: through the same path as the request, the
   * policy checked again (approval aside). A transfer runs under an idempotency key derived from
   * the approval, so however often it is executed, one transfer reaches the chain.
   */
  const executors: ApprovalExecutors = {
    'wallet.transaction.transferSol': (a, ctx) =>
      typedTransferAs(
        'wallet.transferSol',
        { ...(a.request as ParsedRequestOf<'wallet.transaction.transferSol'>), asset: { type: 'native' }, idempotencyKey: `approval:${a.approvalId}` },
        ctx,
        { approvalId: a.approvalId },
      ),
    'wallet.transaction.transfer': (a, ctx) =>
      typedTransferAs(
        'wallet.transfer',
        { ...(a.request as ParsedRequestOf<'wallet.transaction.transfer'>), idempotencyKey: `approval:${a.approvalId}` },
        ctx,
        { approvalId: a.approvalId },
      ),
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
    'wallet.transaction.transfer': (r: ParsedRequestOf<'wallet.transaction.transfer'>, ctx: HandlerContext) =>
      typedTransferAs(
        'wallet.transfer',
        r,
        ctx,
        held('wallet.transaction.transfer', () => `transfer:${r.walletId}:${r.idempotencyKey}`, r, ctx),
      ),

    'wallet.transaction.transferSol': (r: ParsedRequestOf<'wallet.transaction.transferSol'>, ctx: HandlerContext) => {
      const requestKey = `transferSol:${r.walletId}:${r.idempotencyKey ?? randomUUID()}`;
      return typedTransferAs(
        'wallet.transferSol',
        { ...r, asset: { type: 'native' } },
        ctx,
        held('wallet.transaction.transferSol', () => requestKey, r, ctx),
      );
    },

    // The same bytes to sign are the same request.
    'wallet.transaction.sign': (r: ParsedRequestOf<'wallet.transaction.sign'>, ctx: HandlerContext) =>
      signAs(
        r,
        ctx,
        held('wallet.transaction.sign', () => `sign:${r.walletId}:${createHash('sha256').update(r.transaction).digest('hex')}`, r, ctx),
      ),
  };
  return { handlers, executors };
}

type TransferResult = ResultOf<'wallet.transaction.transfer'>;

/** A transfer as `typedTransferAs` takes it: `transferSol`'s key stays optional. */
type TransferBody = Omit<ParsedRequestOf<'wallet.transaction.transfer'>, 'idempotencyKey'> & { idempotencyKey?: string | undefined };

/** What an idempotency key stands for besides recipient and amount: `native` or `token:<mint or contract>`. */
const assetKey = (asset: TransferBody['asset']): string =>
  asset.type === 'native' ? 'native' : 'mint' in asset ? `token:${asset.mint}` : `token:${asset.contract.toLowerCase()}`;

const hexBytes = (hex: string): Uint8Array => Buffer.from(hex.slice(2), 'hex');
const bytesHex = (bytes: Uint8Array): `0x${string}` => `0x${Buffer.from(bytes).toString('hex')}`;

/** What APPROVAL_REQUIRED says of the kept request. */
const approvalDetails = (a: Approval) => ({
  approvalId: a.approvalId,
  status: a.status,
  required: a.required,
  approvals: a.approvedBy.length,
  expiresAt: a.expiresAt,
});

/**
 * What a repeated request answers once its approval has ended, instead of APPROVAL_REQUIRED: the
 * result of the execution (`completed`), or APPROVAL_CLOSED saying how it ended (`failed` with the
 * execution's error, `rejected`, `expired`). Undefined while it is still pending or being executed.
 */
function endOf(a: Approval): FleetError | ExecutedOnApproval | undefined {
  if (a.status === 'completed' && a.result) return new ExecutedOnApproval(a.approvalId, a.result);
  if (a.status !== 'failed' && a.status !== 'rejected' && a.status !== 'expired') return undefined;
  const why = a.error ? ` (${a.error.code}: ${a.error.message})` : '';
  return new FleetError(ErrorCode.APPROVAL_CLOSED, `this request's approval ${a.approvalId} is ${a.status}${why}; a new request needs a new idempotency key`, {
    details: { approvalId: a.approvalId, status: a.status, ...(a.error ? { error: a.error } : {}) },
  });
}

function decodeBase64(s: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw FleetError.validation([{ path: 'transaction', message: 'expected base64' }]);
  return Buffer.from(s, 'base64');
}
