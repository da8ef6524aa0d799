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

/**
 * Every System and SPL token transfer a landed transaction makes, in execution order, each at its
 * eventIndex. Decoded from the instructions' own bytes (not from a node's jsonParsed rendering, which
 * depends on the node's parsers); the mint, decimals and the owners of token accounts come from the
 * transaction's token balances, which the node reads from the accounts themselves.
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

  const decode = (ix: RawInstruction, eventIndex: number): OnChainTransfer | undefined => {
    const program = key(ix.programIdIndex);
    const data = Buffer.from(ix.data);
    const a = ix.accounts;
    if (program === SYSTEM && data.length >= 12) {
      const kind = data.readUInt32LE(0);
      // Transfer { lamports } [from, to]; TransferWithSeed { lamports, seed, owner } [from, base, to].
      const to = kind === 2 ? a[1] : kind === 11 ? a[2] : undefined;
      if (to === undefined) return undefined;
      const amount = data.readBigUInt64LE(4);
      return amount > 0n ? { eventIndex, asset: { kind: 'native' }, from: key(a[0]), to: key(to), amount } : undefined;
    }
    if ((program === TOKEN || program === TOKEN_2022) && data.length >= 9) {
      // Transfer (3) { amount } [source, destination, authority]; TransferChecked (12) { amount,
      // decimals } [source, mint, destination, authority]. Both programs share these layouts.
      const kind = data[0];
      const [source, destination] = kind === 3 ? [a[0], a[1]] : kind === 12 && data.length >= 10 ? [a[0], a[2]] : [undefined, undefined];
      if (source === undefined || destination === undefined) return undefined;
      const amount = data.readBigUInt64LE(1);
      if (amount === 0n) return undefined;
      const dest = tokenAccount(destination);
      const decimals = dest.uiTokenAmount.decimals;
      // The program refuses a mismatch, so a landed transferChecked always agrees; checked anyway
      // because the balances and the instruction come from two places in the node's answer.
      if (kind === 12 && (key(a[1]) !== dest.mint || data[9] !== decimals)) {
        throw new FleetError(ErrorCode.UNAVAILABLE, `the Solana node's token balances disagree with transferChecked at ${eventIndex}`);
      }
      const src = tokenAccounts.get(source);
      return {
        eventIndex,
        asset: { kind: 'spl', mint: dest.mint, decimals, program: program === TOKEN ? 'token' : 'token-2022' },
        from: src?.owner ?? key(a[kind === 3 ? 2 : 3]),
        to: dest.owner,
        tokenAccount: key(destination),
        amount,
      };
    }
    return undefined;
  };

  const inner = new Map((meta.innerInstructions ?? []).map((g) => [g.index, g.instructions]));
  const out: OnChainTransfer[] = [];
  for (const [i, ix] of tx.transaction.message.compiledInstructions.entries()) {
    const outer = decode({ programIdIndex: ix.programIdIndex, accounts: ix.accountKeyIndexes, data: ix.data }, i);
    if (outer) out.push(outer);
    for (const [j, ii] of (inner.get(i) ?? []).entries()) {
      const t = decode({ programIdIndex: ii.programIdIndex, accounts: ii.accounts, data: bs58.decode(ii.data) }, innerEventIndex(i, j));
      if (t) out.push(t);
    }
  }
  return out;
}
