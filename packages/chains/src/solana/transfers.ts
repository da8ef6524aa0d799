import { SystemProgram, type PublicKey, type TokenBalance, type VersionedTransactionResponse } from '@solana/web3.js';
import bs58 from 'bs58';
import { TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID } from '@solana/spl-token';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import type { OnChainTransfer } from '../transfers.js';

const SYSTEM = SystemProgram.programId.toBase58();
const TOKEN = TOKEN_PROGRAM_ID.toBase58();
const TOKEN_2022 = TOKEN_2022_PROGRAM_ID.toBase58();

/**
 * eventIndex of inner instruction `inner` under outer instruction `outer`. A transaction traces at
 * most 64 instructions, outer and inner together (the runtime's MAX_INSTRUCTION_TRACE_LENGTH), so
 * outer instructions keep their own index (0..63) and inner ones never collide with them or each other.
 */
function innerEventIndex(outer: number, inner: number): number {
  return (outer + 1) * 100 + inner;
}

interface RawInstruction {
  programIdIndex: number;
  accounts: number[];
  data: Uint8Array;
}

/** A decoded token transfer with what the fee rule needs: the accounts it moves between, the fee it names. */
interface Decoded {
  transfer: OnChainTransfer;
  /** Token accounts (indexes) it debits and credits (SPL only). */
  source?: number;
  destination?: number;
  /** The fee a `transferCheckedWithFee` names (withheld in the destination); undefined: not named. */
  fee?: bigint;
}

/**
 * Every System and SPL token transfer a landed transaction makes, in execution order, each at its
 * eventIndex. Decoded from the instructions' own bytes (not from a node's jsonParsed rendering, which
 * depends on the node's parsers); the mint, decimals and the owners of token accounts come from the
 * transaction's token balances, which the node reads from the accounts themselves.
 * A Token-2022 mint with a transfer fee withholds the fee in the destination account: `amount` is
 * what arrived (see `withTransferFees`), `fee` what was withheld.
 * Throws UNAVAILABLE when the node gave no token balance (or no owner) for a token account a transfer
 * names: without it the payee cannot be told, and the node's answer is what is missing.
 */
export function transfersInTransaction(tx: VersionedTransactionResponse): OnChainTransfer[] {
  const meta = tx.meta!;
  const keys = tx.transaction.message.getAccountKeys({ accountKeysFromLookups: meta.loadedAddresses ?? { writable: [], readonly: [] } });
  const key = (i: number | undefined): string => {
    const k: PublicKey | undefined = i === undefined ? undefined : keys.get(i);
    if (!k) throw new FleetError(ErrorCode.UNAVAILABLE, 'the transaction names an account index it does not have');
    return k.toBase58();
  };
  // A token account's owner and mint do not change inside a transaction, except when it is closed
  // (then only the balance before knows it) or created (only the balance after).
  const tokenAccounts = new Map<number, TokenBalance>();
  for (const b of [...(meta.preTokenBalances ?? []), ...(meta.postTokenBalances ?? [])]) tokenAccounts.set(b.accountIndex, b);
  const tokenAccount = (index: number | undefined): TokenBalance & { owner: string } => {
    const b = index === undefined ? undefined : tokenAccounts.get(index);
    if (!b?.owner) throw new FleetError(ErrorCode.UNAVAILABLE, `the Solana node gave no token balance with an owner for ${key(index)}`);
    return b as TokenBalance & { owner: string };
  };

  const decode = (ix: RawInstruction, eventIndex: number): Decoded | undefined => {
    const program = key(ix.programIdIndex);
    const data = Buffer.from(ix.data);
    const a = ix.accounts;
    if (program === SYSTEM && data.length >= 12) {
      const kind = data.readUInt32LE(0);
      // Transfer { lamports } [from, to]; TransferWithSeed { lamports, seed, owner } [from, base, to].
      const to = kind === 2 ? a[1] : kind === 11 ? a[2] : undefined;
      if (to === undefined) return undefined;
      const amount = data.readBigUInt64LE(4);
      return amount > 0n ? { transfer: { eventIndex, asset: { kind: 'native' }, from: key(a[0]), to: key(to), amount } } : undefined;
    }
    if ((program === TOKEN || program === TOKEN_2022) && data.length >= 9) {
      // Transfer (3) { amount } [source, destination, authority]; TransferChecked (12) { amount,
      // decimals } [source, mint, destination, authority]. Both programs share these layouts.
      // Token-2022 only: TransferFeeExtension (26) / TransferCheckedWithFee (1) { amount, decimals,
      // fee } [source, mint, destination, authority].
      const kind = data[0];
      const withFee = program === TOKEN_2022 && kind === 26 && data[1] === 1 && data.length >= 19;
      const checked = kind === 12 || withFee;
      const [source, destination] = kind === 3 ? [a[0], a[1]] : (kind === 12 && data.length >= 10) || withFee ? [a[0], a[2]] : [undefined, undefined];
      if (source === undefined || destination === undefined) return undefined;
      const amount = data.readBigUInt64LE(withFee ? 2 : 1);
      if (amount === 0n) return undefined;
      const dest = tokenAccount(destination);
      const decimals = dest.uiTokenAmount.decimals;
      // The program refuses a mismatch, so a landed transferChecked always agrees; checked anyway
      // because the balances and the instruction come from two places in the node's answer.
      if (checked && (key(a[1]) !== dest.mint || data[withFee ? 10 : 9] !== decimals)) {
        throw new FleetError(ErrorCode.UNAVAILABLE, `the Solana node's token balances disagree with transferChecked at ${eventIndex}`);
      }
      const src = tokenAccounts.get(source);
      return {
        transfer: {
          eventIndex,
          asset: { kind: 'spl', mint: dest.mint, decimals, program: program === TOKEN ? 'token' : 'token-2022' },
          from: src?.owner ?? key(a[kind === 3 ? 2 : 3]),
          to: dest.owner,
          tokenAccount: key(destination),
          amount,
        },
        source,
        destination,
        ...(withFee ? { fee: data.readBigUInt64LE(11) } : {}),
      };
    }
    return undefined;
  };

  const inner = new Map((meta.innerInstructions ?? []).map((g) => [g.index, g.instructions]));
  const out: Decoded[] = [];
  for (const [i, ix] of tx.transaction.message.compiledInstructions.entries()) {
    const outer = decode({ programIdIndex: ix.programIdIndex, accounts: ix.accountKeyIndexes, data: ix.data }, i);
    if (outer) out.push(outer);
    for (const [j, ii] of (inner.get(i) ?? []).entries()) {
      const t = decode({ programIdIndex: ii.programIdIndex, accounts: ii.accounts, data: bs58.decode(ii.data) }, innerEventIndex(i, j));
      if (t) out.push(t);
    }
  }
  return withTransferFees(out, meta.preTokenBalances ?? [], meta.postTokenBalances ?? []);
}

/**
 * What Token-2022 transfers delivered, net of a mint's transfer fee (withheld in the destination
 * account, not paid to its owner). A `transferCheckedWithFee` names its fee. For a plain
 * `transfer`/`transferChecked` of a fee-charging mint the program computes the fee, which the
 * transaction does not show: it is what the destination account's balance change (after minus
 * before) falls short of the transfers into it (minus those out of it and the named fees). That
 * shortfall belongs to the one transfer into the account whose fee is not named; when several
 * share an account and a shortfall, what each delivered cannot be told, and they are left out
 * (a claim for one fails with the reason; nothing is credited gross).
 */
function withTransferFees(decoded: Decoded[], pre: readonly TokenBalance[], post: readonly TokenBalance[]): OnChainTransfer[] {
  const balance = (list: readonly TokenBalance[], index: number) => BigInt(list.find((b) => b.accountIndex === index)?.uiTokenAmount.amount ?? '0');
  const is2022 = (d: Decoded) => d.transfer.asset.kind === 'spl' && d.transfer.asset.program === 'token-2022';
  const leftOut = new Set<Decoded>();
  const destinations = new Set(decoded.filter(is2022).map((d) => d.destination!));
  for (const account of destinations) {
    const into = decoded.filter((d) => is2022(d) && d.destination === account);
    const outOf = decoded.filter((d) => is2022(d) && d.source === account);
    const sum = (list: Decoded[], f: (d: Decoded) => bigint) => list.reduce((n, d) => n + f(d), 0n);
    const expected = sum(into, (d) => d.transfer.amount - (d.fee ?? 0n)) - sum(outOf, (d) => d.transfer.amount);
    const shortfall = expected - (balance(post, account) - balance(pre, account));
    const unnamed = into.filter((d) => d.fee === undefined);
    if (shortfall <= 0n || unnamed.length === 0) continue;
    if (unnamed.length === 1 && shortfall < unnamed[0]!.transfer.amount) unnamed[0]!.fee = shortfall;
    else for (const d of unnamed) leftOut.add(d);
  }
  return decoded
    .filter((d) => !leftOut.has(d))
    .map((d) => (d.fee ? { ...d.transfer, amount: d.transfer.amount - d.fee, fee: d.fee } : d.transfer))
    .filter((t) => t.amount > 0n);
}
