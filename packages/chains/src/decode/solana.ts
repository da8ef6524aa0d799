import { ComputeBudgetProgram, PublicKey, SystemProgram } from '@solana/web3.js';
import { ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID } from '@solana/spl-token';
import { type ParsedSolanaTransaction, parsedSolanaTransaction } from '../solana/parse.js';
import type { Action, Intent } from './intent.js';

const SYSTEM = SystemProgram.programId.toBase58();
const COMPUTE_BUDGET = ComputeBudgetProgram.programId.toBase58();
const TOKEN_PROGRAMS = new Set([TOKEN_PROGRAM_ID.toBase58(), TOKEN_2022_PROGRAM_ID.toBase58()]);
const ATA = ASSOCIATED_TOKEN_PROGRAM_ID.toBase58();
const MEMO_PROGRAMS = new Set(['MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr', 'Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo']);
const SYSTEM_ADVANCE_NONCE = 4;
const LAMPORTS_PER_SIGNATURE = 5000n;
// The runtime's default compute budget when a transaction sets none.
const DEFAULT_UNITS_PER_INSTRUCTION = 200_000;
const MAX_UNITS = 1_400_000;

interface Instruction {
  program: string;
  /** Account addresses, null where the account comes from an address lookup table (unknown offline). */
  accounts: (string | null)[];
  data: Uint8Array;
}

/**
 * Decodes a serialized Solana transaction (legacy or v0, signed or not; as bytes, or as read by
 * `parseSolanaTransaction`) into an intent. `wallet` is
 * the address that will sign: a token account closed to it is the wallet's own business, to anyone
 * else it is an unknown action. Pure: no RPC, so accounts behind address lookup tables stay unknown
 * and an instruction that uses one is an unknown action.
 * Throws VALIDATION_FAILED (not a Solana transaction).
 */
export function decodeSolanaTransaction(input: Uint8Array | ParsedSolanaTransaction, options: { wallet: string }): Intent {
  const message = parsedSolanaTransaction(input).transaction.message;
  const keys = message.staticAccountKeys.map((k) => k.toBase58());
  const key = (i: number) => (i < keys.length ? keys[i]! : null);
  const instructions: Instruction[] = message.compiledInstructions.map((ix) => ({
    program: key(ix.programIdIndex) ?? '(lookup table)',
    accounts: ix.accountKeyIndexes.map(key),
    data: ix.data,
  }));
  const actions = instructions.map((ix) => decodeInstruction(ix, options.wallet));

  const budget = actions.filter((a): a is Extract<Action, { kind: 'compute-budget' }> => a.kind === 'compute-budget');
  const unitLimit =
    budget.find((b) => b.unitLimit !== undefined)?.unitLimit ??
    Math.min(MAX_UNITS, DEFAULT_UNITS_PER_INSTRUCTION * instructions.filter((ix) => ix.program !== COMPUTE_BUDGET).length);
  const price = BigInt(budget.find((b) => b.microLamportsPerUnit !== undefined)?.microLamportsPerUnit ?? '0');
  const signatures = BigInt(message.header.numRequiredSignatures);
  const priority = (BigInt(unitLimit) * price + 999_999n) / 1_000_000n;
  const first = instructions[0];
  const durableNonce = first !== undefined && first.program === SYSTEM && first.data.length >= 4 && u32(first.data, 0) === SYSTEM_ADVANCE_NONCE;

  return {
    chain: 'SOL',
    from: keys[0] ?? '',
    actions,
    fee: {
      max: (LAMPORTS_PER_SIGNATURE * signatures + priority).toString(),
      detail: { signatures: Number(signatures), computeUnitLimit: unitLimit, microLamportsPerUnit: price.toString() },
    },
    expiry: durableNonce
      ? { kind: 'none', reason: 'durable nonce: valid until the nonce account advances' }
      : { kind: 'blockhash', blockhash: message.recentBlockhash },
  };
}

function decodeInstruction(ix: Instruction, wallet: string): Action {
  const unknown = (reason: string): Action => ({ kind: 'unknown', program: ix.program, reason });
  if (ix.accounts.some((a) => a === null)) return unknown('uses accounts from an address lookup table, which cannot be read offline');
  const acc = ix.accounts as string[];
  const d = ix.data;
  try {
    if (ix.program === SYSTEM) {
      const op = u32(d, 0);
      if (op === 2 && d.length === 12 && acc.length >= 2) return { kind: 'native-transfer', from: acc[0]!, to: acc[1]!, amount: u64(d, 4).toString() };
      if (op === 0 && d.length === 52 && acc.length >= 2) {
        return { kind: 'create-account', from: acc[0]!, account: acc[1]!, lamports: u64(d, 4).toString(), owner: new PublicKey(d.subarray(20, 52)).toBase58() };
      }
      if (op === SYSTEM_ADVANCE_NONCE) return unknown('AdvanceNonceAccount (a durable-nonce transaction never expires)');
      return unknown(`system instruction ${op}`);
    }
    if (TOKEN_PROGRAMS.has(ix.program)) {
      const op = d[0];
      if (op === 3 && d.length === 9 && acc.length >= 3)
        return { kind: 'token-transfer', program: ix.program, token: null, from: acc[0]!, to: acc[1]!, amount: u64(d, 1).toString() };
      if (op === 12 && d.length === 10 && acc.length >= 4) {
        return { kind: 'token-transfer', program: ix.program, token: acc[1]!, from: acc[0]!, to: acc[2]!, amount: u64(d, 1).toString(), decimals: d[9]! };
      }
      if (op === 9 && acc.length >= 3) {
        if (acc[1] === wallet) return { kind: 'close-token-account', program: ix.program, account: acc[0]!, destination: acc[1] };
        return unknown(`CloseAccount sending the rent to ${acc[1]}, not to the wallet`);
      }
      return unknown(`${TOKEN_INSTRUCTION_NAMES[op ?? -1] ?? `token instruction ${op}`}`);
    }
    if (ix.program === ATA) {
      const op = d.length === 0 ? 0 : d[0];
      if ((op === 0 || op === 1) && d.length <= 1 && acc.length >= 6) {
        return { kind: 'create-token-account', payer: acc[0]!, account: acc[1]!, owner: acc[2]!, mint: acc[3]!, idempotent: op === 1 };
      }
      return unknown(`associated token account instruction ${op}`);
    }
    if (MEMO_PROGRAMS.has(ix.program)) return { kind: 'memo', text: new TextDecoder('utf-8', { fatal: true }).decode(d) };
    if (ix.program === COMPUTE_BUDGET) {
      const op = d[0];
      if (op === 1 && d.length === 5) return { kind: 'compute-budget', heapBytes: u32(d, 1) };
      if (op === 2 && d.length === 5) return { kind: 'compute-budget', unitLimit: u32(d, 1) };
      if (op === 3 && d.length === 9) return { kind: 'compute-budget', microLamportsPerUnit: u64(d, 1).toString() };
      if (op === 4 && d.length === 5) return { kind: 'compute-budget' };
      return unknown(`compute budget instruction ${op}`);
    }
  } catch {
    return unknown('malformed instruction data');
  }
  return unknown('program not understood');
}

const TOKEN_INSTRUCTION_NAMES: Record<number, string> = {
  4: 'Approve (a delegate may move the tokens)',
  5: 'Revoke',
  6: 'SetAuthority (hands the account or mint to another key)',
  7: 'MintTo',
  8: 'Burn',
  10: 'FreezeAccount',
  11: 'ThawAccount',
  13: 'ApproveChecked (a delegate may move the tokens)',
};

function u32(d: Uint8Array, at: number): number {
  if (d.length < at + 4) throw new RangeError('short');
  return new DataView(d.buffer, d.byteOffset + at, 4).getUint32(0, true);
}

function u64(d: Uint8Array, at: number): bigint {
  if (d.length < at + 8) throw new RangeError('short');
  return new DataView(d.buffer, d.byteOffset + at, 8).getBigUint64(0, true);
}
