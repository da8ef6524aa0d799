import type { Action, Intent } from '@wallet-fleet/chains';
import type { Chain, PolicyRules } from '@wallet-fleet/contracts';

export type Scope = 'fleet' | 'user' | 'wallet';

/** The rules of one scope that applies to a wallet. */
export interface ScopedRules {
  scope: Scope;
  /** userId or walletId; null for the fleet. */
  id: string | null;
  rules: PolicyRules;
}

/** Why a transaction is refused: the rule, the scope that set it, and the numbers that broke it. */
export interface Denial {
  rule: 'unsignable' | 'unknownAction' | 'denyDestinations' | 'allowDestinations' | 'maxPerTransaction' | 'dailyPerWallet' | 'dailyPerUser';
  message: string;
  scope?: Scope;
  scopeId?: string | null;
  asset?: string;
  limit?: string;
  amount?: string;
  used?: string;
  destination?: string;
  program?: string;
}

/** A rolling 24 h cap that applies to this transaction, checked against the spend store. */
export interface DailyCap {
  rule: 'dailyPerWallet' | 'dailyPerUser';
  scope: Scope;
  scopeId: string | null;
  asset: string;
  limit: bigint;
}

/** An approval threshold the transaction is above: the most approvers any applicable scope asks for. */
export interface ApprovalNeed {
  scope: Scope;
  scopeId: string | null;
  asset: string;
  threshold: string;
  amount: string;
  approvers: number;
}

/** Distinct approvers a scope with `approvalAbove` and no `approvers` asks for. */
export const DEFAULT_APPROVERS = 2;

export type Evaluation =
  | { allowed: true; spend: Map<string, bigint>; dailyCaps: DailyCap[]; approval?: ApprovalNeed }
  | { allowed: false; denial: Denial; spend: Map<string, bigint> };

/**
 * Normalised for comparison: EVM addresses (and ETH token asset keys) in lower case, Aptos
 * addresses in their long form; Solana's base58 is case-sensitive and kept as it is.
 */
function normalize(chain: Chain, value: string): string {
  if (chain === 'ETH') return value.toLowerCase();
  if (chain === 'APTOS' && /^0x[0-9a-fA-F]{1,64}$/.test(value)) return `0x${value.slice(2).toLowerCase().padStart(64, '0')}`;
  return value;
}

const normalizeAsset = (asset: string) => (asset.startsWith('ETH:') ? asset.toLowerCase() : asset);

/** The asset an action moves, as policies name it; undefined for an action that moves none. */
function outflow(chain: Chain, a: Action): { asset: string; to: string; amount: bigint } | undefined {
  switch (a.kind) {
    case 'native-transfer':
      return { asset: chain, to: a.to, amount: BigInt(a.amount) };
    case 'token-transfer':
      return { asset: normalizeAsset(`${chain}:${a.token ?? 'unknown-mint'}`), to: a.to, amount: BigInt(a.amount) };
    case 'create-account':
      return { asset: chain, to: a.account, amount: BigInt(a.lamports) };
    case 'contract-call':
      return BigInt(a.value) > 0n ? { asset: chain, to: a.contract, amount: BigInt(a.value) } : undefined;
    default:
      return undefined;
  }
}

/**
 * Decides what rules alone can decide about an intent, in this order: a transaction that can never
 * be signed; an action not understood (unknown, or a contract call) whose program no scope allows;
 * a destination deny-listed by any scope, or missing from the allow-list of any scope that has one;
 * a per-transaction cap of any scope. Amounts per asset include the most the transaction may burn
 * in fees (in the native asset): a cap bounds what can leave the wallet, fees included. The
 * rolling caps come back as `dailyCaps` for the spend store to check atomically, and an approval
 * threshold the transaction is above as `approval` (it never turns a denial into an approval:
 * the caller checks the rolling caps first). Pure.
 */
export function evaluate(intent: Intent, policies: readonly ScopedRules[]): Evaluation {
  const chain = intent.chain;
  const spend = new Map<string, bigint>();
  const add = (asset: string, amount: bigint) => spend.set(asset, (spend.get(asset) ?? 0n) + amount);
  const destinations: string[] = [];
  for (const a of intent.actions) {
    const out = outflow(chain, a);
    if (!out) continue;
    add(out.asset, out.amount);
    destinations.push(out.to);
  }
  add(chain, BigInt(intent.fee.max));
  const deny = (denial: Denial): Evaluation => ({ allowed: false, denial, spend });

  if (intent.unsignable) return deny({ rule: 'unsignable', message: intent.unsignable });

  const allowedPrograms = new Set(policies.flatMap((p) => (p.rules.allowPrograms ?? []).map((x) => normalize(chain, x))));
  for (const a of intent.actions) {
    if (a.kind !== 'unknown' && a.kind !== 'contract-call') continue;
    const program = a.kind === 'unknown' ? a.program : a.contract;
    if (program !== undefined && allowedPrograms.has(normalize(chain, program))) continue;
    const what = a.kind === 'unknown' ? a.reason : `call ${a.name ?? a.selector}`;
    return deny({
      rule: 'unknownAction',
      message: program ? `${what} on ${program}: not allowed by any policy (allowPrograms)` : `${what}: never signed`,
      ...(program ? { program } : {}),
    });
  }

  for (const p of policies) {
    const denied = new Set((p.rules.denyDestinations ?? []).map((x) => normalize(chain, x)));
    const allowed = p.rules.allowDestinations ? new Set(p.rules.allowDestinations.map((x) => normalize(chain, x))) : undefined;
    for (const to of destinations) {
      const n = normalize(chain, to);
      if (denied.has(n))
        return deny({ rule: 'denyDestinations', message: `${to} is on the ${p.scope} deny-list`, scope: p.scope, scopeId: p.id, destination: to });
      if (allowed && !allowed.has(n)) {
        return deny({ rule: 'allowDestinations', message: `${to} is not on the ${p.scope} allow-list`, scope: p.scope, scopeId: p.id, destination: to });
      }
    }
  }

  const capsOf = (caps: Record<string, string> | undefined) =>
    Object.entries(caps ?? {}).map(([asset, limit]) => [normalizeAsset(asset), BigInt(limit)] as const);
  for (const p of policies) {
    for (const [asset, limit] of capsOf(p.rules.maxPerTransaction)) {
      const amount = spend.get(asset);
      if (amount !== undefined && amount > limit) {
        return deny({
          rule: 'maxPerTransaction',
          message: `${amount} ${asset} (fees included) is above the ${p.scope} cap of ${limit} per transaction`,
          scope: p.scope,
          scopeId: p.id,
          asset,
          limit: limit.toString(),
          amount: amount.toString(),
        });
      }
    }
  }

  const dailyCaps: DailyCap[] = [];
  for (const p of policies) {
    for (const rule of ['dailyPerWallet', 'dailyPerUser'] as const) {
      for (const [asset, limit] of capsOf(p.rules[rule])) {
        if (spend.has(asset)) dailyCaps.push({ rule, scope: p.scope, scopeId: p.id, asset, limit });
      }
    }
  }

  let approval: ApprovalNeed | undefined;
  for (const p of policies) {
    for (const [asset, threshold] of capsOf(p.rules.approvalAbove)) {
      const amount = spend.get(asset);
      const approvers = p.rules.approvers ?? DEFAULT_APPROVERS;
      if (amount === undefined || amount <= threshold || (approval && approval.approvers >= approvers)) continue;
      approval = { scope: p.scope, scopeId: p.id, asset, threshold: threshold.toString(), amount: amount.toString(), approvers };
    }
  }
  return { allowed: true, spend, dailyCaps, ...(approval ? { approval } : {}) };
}
