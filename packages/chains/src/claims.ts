import type { OnChainTransfer, TransactionReport } from './transfers.js';

/** What a deposit notification says happened: one transfer of one transaction. */
export interface DepositClaim {
  chain: 'SOL' | 'ETH';
  txHash: string;
  eventIndex: number;
  /** `native`, or the token's mint (SPL) or contract (ERC-20). */
  token: string;
  /** Base units. */
  amount: bigint;
  /** The wallet paid (SPL: the owner of the token account, not the token account). */
  toAddress: string;
}

/**
 * The chain's word on a claim.
 * - `final`: the transfer at the claim's identity is exactly the claim, and final: credit it, once
 *   per `creditKey`;
 * - `confirming`: it matches but is not final yet: ask again later;
 * - `pending` / `not_found`: the transaction is not readable (yet, or any more);
 * - `mismatch`: the transaction failed, or what it moved at that identity is not the claim.
 * A credit stays standing while asking again says `final` (or `confirming`); anything else means
 * its transfer is no longer on the canonical chain, or never was, by that node's word (the caller
 * decides how many such answers a reversal needs).
 */
export type ClaimVerdict =
  | { kind: 'final'; creditKey: string; transfer: OnChainTransfer }
  | { kind: 'confirming'; creditKey: string; transfer: OnChainTransfer; reason: string }
  | { kind: 'pending'; reason: string }
  | { kind: 'not_found' }
  | { kind: 'mismatch'; reason: string };

/**
 * The one name of an on-chain transfer, for crediting it at most once whatever the notifications
 * say: chain, transaction id (EVM hashes lower-cased), native or token, eventIndex. Native and token
 * are told apart because EVM numbers both from 0 (its value at 0, logs from 0).
 */
export function creditKey(chain: DepositClaim['chain'], txHash: string, transfer: Pick<OnChainTransfer, 'eventIndex' | 'asset'>): string {
  return `${chain}:${chain === 'ETH' ? txHash.toLowerCase() : txHash}:${transfer.asset.kind === 'native' ? 'native' : 'token'}:${transfer.eventIndex}`;
}

/**
 * Weighs a deposit claim against what the chain reports for its transaction (`transfersOf` of the
 * claim's chain). Pure: no I/O, no throw.
 */
export function judgeClaim(report: TransactionReport, claim: DepositClaim): ClaimVerdict {
  switch (report.status) {
    case 'not_found':
      return { kind: 'not_found' };
    case 'pending':
      return { kind: 'pending', reason: report.reason };
    case 'failed':
      return { kind: 'mismatch', reason: report.reason };
    case 'landed':
      break;
  }
  const native = claim.token === 'native';
  const transfer = report.transfers.find((t) => t.eventIndex === claim.eventIndex && (t.asset.kind === 'native') === native);
  if (!transfer) {
    const there = report.transfers.map((t) => `${t.eventIndex} (${t.asset.kind})`).join(', ') || 'none';
    return { kind: 'mismatch', reason: `no ${native ? 'native' : 'token'} transfer at eventIndex ${claim.eventIndex}; transfers at: ${there}` };
  }
  const same = (a: string, b: string) => (claim.chain === 'ETH' ? a.toLowerCase() === b.toLowerCase() : a === b);
  const token = transfer.asset.kind === 'erc20' ? transfer.asset.contract : transfer.asset.kind === 'spl' ? transfer.asset.mint : 'native';
  if (!same(token, claim.token)) return { kind: 'mismatch', reason: `the transfer at ${claim.eventIndex} moves ${token}, not ${claim.token}` };
  if (!same(transfer.to, claim.toAddress))
    return { kind: 'mismatch', reason: `the transfer at ${claim.eventIndex} pays ${transfer.to}, not ${claim.toAddress}` };
  if (transfer.amount !== claim.amount) {
    const fee = transfer.fee ? ` (${transfer.amount + transfer.fee} less a transfer fee of ${transfer.fee} withheld by the mint)` : '';
    return { kind: 'mismatch', reason: `the transfer at ${claim.eventIndex} moves ${transfer.amount}${fee}, not ${claim.amount}` };
  }
  const key = creditKey(claim.chain, claim.txHash, transfer);
  if (!report.finality.final) {
    const how = report.finality.commitment ?? `${report.finality.confirmations ?? '?'} confirmations`;
    return { kind: 'confirming', creditKey: key, transfer, reason: `not final yet (${how})` };
  }
  return { kind: 'final', creditKey: key, transfer };
}
