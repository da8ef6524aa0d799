import { randomBytes } from 'node:crypto';
import type { LiteSVM } from 'litesvm';
import {
  AddressLookupTableAccount,
  ComputeBudgetProgram,
  Keypair,
  PublicKey,
  SystemProgram,
  TransactionMessage,
  VersionedTransaction,
  type MessageAccountKeys,
} from '@solana/web3.js';
import bs58 from 'bs58';
import { ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID } from '@solana/spl-token';
import { RpcError, errorText, preflightFailure, txErrorJson } from './errors.js';
import { flat, key, verifySignatures } from './wire.js';

const TOKEN_PROGRAMS = new Set([TOKEN_PROGRAM_ID.toBase58(), TOKEN_2022_PROGRAM_ID.toBase58()]);
/** A blockhash stays valid for this many slots, as on a real cluster. */
export const BLOCKHASH_WINDOW = 150;
/**
 * Landed transactions kept (oldest dropped first, status and detail together), so a long-running
 * dev node does not grow without bound (about 0.6 KB of heap each for a transfer). They are also the replay
 * protection, so this must exceed the transactions of one blockhash window (150 slots).
 */
const MAX_STATUSES = 200_000;
/** Lamports the airdrop faucet starts with (a devnet faucet is effectively bottomless too). */
const FAUCET_LAMPORTS = 2n ** 62n;

/** A landed transaction: what getSignatureStatuses and getTransaction report. */
export interface Landed {
  slot: number;
  /** Unix seconds. */
  blockTime: number;
  err: unknown;
  /** The transaction's wire bytes (decoded again on request: the smallest form to keep). */
  wire: Uint8Array;
  loaded: { writable: string[]; readonly: string[] };
  /** Lamports of every account key (static, then loaded writable, then loaded readonly). */
  preBalances: number[];
  postBalances: number[];
  fee: number;
  logs: string[];
  unitsConsumed: number;
  inner: Array<{ index: number; instructions: Array<{ programIdIndex: number; accounts: number[]; data: string; stackHeight: number }> }>;
  /** The token accounts among the account keys, just before and after execution (absent: not a token account then). */
  preTokenBalances: TokenBalance[];
  postTokenBalances: TokenBalance[];
}

/** A token account's balance as a validator's getTransaction meta gives it. */
export interface TokenBalance {
  accountIndex: number;
  mint: string;
  owner: string;
  programId: string;
  uiTokenAmount: { amount: string; decimals: number; uiAmount: number | null; uiAmountString: string };
}

/**
 * Whether `data` (owned by a token program) is a token account: 165 bytes, or a Token-2022 account
 * with extensions, whose type byte after the base layout says Account (a mint with extensions is
 * as long but says Mint; a multisig is 355 bytes).
 */
function isTokenAccount(program: string, data: Uint8Array): boolean {
  if (!TOKEN_PROGRAMS.has(program)) return false;
  if (data.length === 165) return true;
  return program === TOKEN_2022_PROGRAM_ID.toBase58() && data.length > 165 && data.length !== 355 && data[165] === 2;
}

type LiteSvmModule = typeof import('litesvm');

/**
 * The state of the one-node cluster: the VM with its accounts, the slot and the window of valid
 * blockhashes, the landed transactions, and the faucet. Every transaction executes here (one node,
 * no forks) and is final at once, or `finalizeAfterSlots` slots later.
 */
export class Ledger {
  slot = 0;
  /** The last BLOCKHASH_WINDOW blockhashes, newest last. */
  readonly recent: string[];
  readonly genesisHash = bs58.encode(randomBytes(32));
  readonly statuses = new Map<string, Landed>();
  // litesvm cannot enumerate accounts: remember every key a transaction touched, for
  // getTokenAccountsByOwner.
  private readonly known = new Set<string>();
  // Airdrops are real transfers from a faucet, as on devnet: they land, have a status and a
  // getTransaction answer like any other transaction.
  private readonly faucet = Keypair.generate();
  private airdrops = 0;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly lite: LiteSvmModule,
    readonly svm: LiteSVM,
    slotMs: number,
    /** Slots a landed transaction stays `confirmed` before it is `finalized` (0: final at once). */
    readonly finalizeAfterSlots: number,
  ) {
    this.recent = [svm.latestBlockhash()];
    svm.setAccount(this.faucet.publicKey, { lamports: Number(FAUCET_LAMPORTS), data: new Uint8Array(), owner: SystemProgram.programId, executable: false });
    this.timer = setInterval(() => this.advance(), slotMs);
    this.timer.unref();
  }

  /** A fresh ledger whose slot advances every `slotMs`; see `finalizeAfterSlots`. */
  static async create(slotMs: number, finalizeAfterSlots = 0): Promise<Ledger> {
    // Loaded on demand, so that importing this package for startAnvil alone does not load the
    // native module.
    const lite = await import('litesvm');
    // litesvm accepts only its latest blockhash; a real cluster accepts any of the last 150. Its
    // own check is off and the window is kept here, so a transaction built a moment before the
    // blockhash advanced still lands (and one built with an unknown blockhash still fails).
    return new Ledger(lite, new lite.LiteSVM().withBlockhashCheck(false), slotMs, finalizeAfterSlots);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  get latestBlockhash(): string {
    return this.recent[this.recent.length - 1]!;
  }

  private advance(): void {
    this.slot += 1;
    this.svm.warpToSlot(BigInt(this.slot));
    this.svm.expireBlockhash();
    this.recent.push(this.svm.latestBlockhash());
    if (this.recent.length > BLOCKHASH_WINDOW) this.recent.shift();
  }

  /** Whether a transaction that landed in `slot` is finalized by now. */
  finalized(slot: number): boolean {
    return this.slot - slot >= this.finalizeAfterSlots;
  }

  private record(signature: string, landed: Landed): void {
    this.statuses.set(signature, landed);
    if (this.statuses.size > MAX_STATUSES) this.statuses.delete(this.statuses.keys().next().value!);
  }

  /** Static keys, then the keys loaded from address lookup tables (as the runtime orders them). */
  private accountKeys(tx: VersionedTransaction): MessageAccountKeys {
    const lookups = tx.message.addressTableLookups.map((l) => {
      const acc = this.svm.getAccount(l.accountKey);
      return acc ? new AddressLookupTableAccount({ key: l.accountKey, state: AddressLookupTableAccount.deserialize(acc.data) }) : undefined;
    });
    const m = tx.message;
    if (m.version === 'legacy') return m.getAccountKeys();
    // A missing table: the transaction fails to load (AddressLookupTableNotFound); static keys only.
    if (lookups.some((l) => !l)) return m.getAccountKeys({ accountKeysFromLookups: { writable: [], readonly: [] } });
    return m.getAccountKeys({ addressLookupTableAccounts: lookups as AddressLookupTableAccount[] });
  }

  private tokenBalances(keys: MessageAccountKeys): TokenBalance[] {
    const out: TokenBalance[] = [];
    for (let i = 0; i < keys.length; i++) {
      const acc = this.svm.getAccount(keys.get(i)!);
      if (!acc || !isTokenAccount(acc.owner.toBase58(), acc.data)) continue;
      const data = Buffer.from(acc.data);
      const mint = new PublicKey(data.subarray(0, 32));
      const decimals = this.mintDecimals(mint);
      const amount = data.readBigUInt64LE(64);
      const ui = Number(amount) / 10 ** decimals;
      out.push({
        accountIndex: i,
        mint: flat(mint.toBase58()),
        owner: flat(new PublicKey(data.subarray(32, 64)).toBase58()),
        programId: flat(acc.owner.toBase58()),
        // As a validator: uiAmount null for a zero balance (uiAmountString is the reliable field).
        uiTokenAmount: { amount: amount.toString(), decimals, uiAmount: amount === 0n ? null : ui, uiAmountString: String(ui) },
      });
    }
    return out;
  }

  private mintDecimals(mint: PublicKey): number {
    const acc = this.svm.getAccount(mint);
    return acc && acc.data.length >= 45 ? acc.data[44]! : 0;
  }

  private balances(keys: MessageAccountKeys): number[] {
    const out: number[] = [];
    for (let i = 0; i < keys.length; i++) out.push(Number(this.svm.getBalance(keys.get(i)!) ?? 0n));
    return out;
  }

  /** Executes `tx` in the VM and records it with its balances before and after; returns its error (null: success). */
  private land(tx: VersionedTransaction, signature: string): unknown {
    const { FailedTransactionMetadata } = this.lite;
    const keys = this.accountKeys(tx);
    const preBalances = this.balances(keys);
    const preTokenBalances = this.tokenBalances(keys);
    const result = this.svm.sendTransaction(tx);
    for (const k of tx.message.staticAccountKeys) this.known.add(flat(k.toBase58()));
    const failed = result instanceof FailedTransactionMetadata;
    const err = failed ? txErrorJson(result.err()) : null;
    if (err === 'AlreadyProcessed') throw preflightFailure(err, []);
    const meta = failed ? result.meta() : (result as InstanceType<LiteSvmModule['TransactionMetadata']>);
    const postBalances = this.balances(keys);
    // Lamports only leave the accounts of a transaction as its fee (execution is balanced, or the
    // transaction fails as UnbalancedTransaction), so this is the fee charged, priority fee included.
    const fee = preBalances.reduce((a, b) => a + b, 0) - postBalances.reduce((a, b) => a + b, 0);
    this.record(signature, {
      slot: this.slot,
      blockTime: Math.floor(Date.now() / 1000),
      err,
      wire: tx.serialize(),
      loaded: {
        writable: keys.accountKeysFromLookups?.writable.map((k) => flat(k.toBase58())) ?? [],
        readonly: keys.accountKeysFromLookups?.readonly.map((k) => flat(k.toBase58())) ?? [],
      },
      preBalances,
      postBalances,
      preTokenBalances,
      postTokenBalances: this.tokenBalances(keys),
      fee,
      logs: meta.logs(),
      unitsConsumed: Number(meta.computeUnitsConsumed()),
      inner: meta
        .innerInstructions()
        .map((list, index) => ({
          index,
          instructions: list.map((ii) => {
            const c = ii.instruction();
            return { programIdIndex: c.programIdIndex(), accounts: [...c.accounts()], data: flat(bs58.encode(c.data())), stackHeight: ii.stackHeight() };
          }),
        }))
        .filter((x) => x.instructions.length > 0),
    });
    return err;
  }

  // litesvm 0.8's x86 JIT corrupts the V8 heap when a program makes cross-program invocations
  // under the old ABI (the Associated Token Account program always does): the process aborts
  // later, at some garbage collection, with std::bad_alloc (LiteSVM/litesvm#171, PoC in #352; the
  // suggested feature flag breaks the bundled token program). Refusing those transactions up front
  // turns a random crash of the whole process into a clear error.
  refuseUnsafe(tx: VersionedTransaction): void {
    const keys = tx.message.staticAccountKeys;
    for (const ix of tx.message.compiledInstructions) {
      if (keys[ix.programIdIndex]?.equals(ASSOCIATED_TOKEN_PROGRAM_ID)) {
        throw new RpcError(
          -32602,
          'the local Solana runtime does not run Associated Token Account instructions (litesvm corrupts memory on cross-program invocations); create the token account with SystemProgram.createAccount and InitializeAccount3',
        );
      }
    }
  }

  /** sendTransaction: checks as a validator does, then lands the transaction; returns its signature. */
  execute(tx: VersionedTransaction, preflight: boolean): string {
    this.refuseUnsafe(tx);
    const signature = flat(bs58.encode(tx.signatures[0] ?? new Uint8Array(64)));
    // A real node verifies signatures before anything else and answers -32003.
    if (!verifySignatures(tx)) throw new RpcError(-32003, 'Transaction signature verification failure');
    if (!this.recent.includes(tx.message.recentBlockhash)) {
      if (preflight) throw preflightFailure('BlockhashNotFound', []);
      return signature; // dropped silently, as a cluster does: it never lands
    }
    // litesvm forgets processed signatures after a few thousand transactions, so an old
    // transaction with a still-valid blockhash would execute again: replay protection, which a
    // cluster gives for the whole blockhash window, comes from our own status history.
    if (this.statuses.has(signature)) throw preflightFailure('AlreadyProcessed', []);
    if (preflight) {
      const sim = this.svm.simulateTransaction(tx);
      if (sim instanceof this.lite.FailedTransactionMetadata) throw preflightFailure(txErrorJson(sim.err()), sim.meta().logs());
    }
    this.land(tx, signature);
    return signature;
  }

  /** simulateTransaction: the transaction run without landing; `err` null on success. */
  simulate(tx: VersionedTransaction, sigVerify: boolean): { err: unknown; logs: string[]; unitsConsumed: number } {
    // A real node simulates without checking signatures unless asked to (web3.js relies on
    // that for unsigned transactions); litesvm always checks, so it is switched off around
    // this one call (single-threaded: nothing else runs in between).
    if (!sigVerify) this.svm.withSigverify(false);
    let sim;
    try {
      sim = this.svm.simulateTransaction(tx);
    } finally {
      this.svm.withSigverify(true);
    }
    const err = sim instanceof this.lite.FailedTransactionMetadata ? txErrorJson(sim.err()) : null;
    const meta = sim.meta();
    return { err, logs: meta.logs(), unitsConsumed: Number(meta.computeUnitsConsumed()) };
  }

  /** Credits `lamports` to `address` (base58) with a transfer from the faucet; returns its signature. */
  airdrop(address: string, lamports: bigint): string {
    const faucet = this.faucet;
    const instructions = [SystemProgram.transfer({ fromPubkey: faucet.publicKey, toPubkey: key(address), lamports })];
    const build = () => {
      const message = new TransactionMessage({ payerKey: faucet.publicKey, recentBlockhash: this.latestBlockhash, instructions }).compileToLegacyMessage();
      const tx = new VersionedTransaction(message);
      tx.sign([faucet]);
      return tx;
    };
    let tx = build();
    // Ed25519 signatures are deterministic: the same airdrop twice within one slot would be the same
    // transaction (refused as already processed). A compute-unit limit that differs per airdrop
    // makes it another one without changing what it costs.
    if (this.statuses.has(bs58.encode(tx.signatures[0]!))) {
      instructions.unshift(ComputeBudgetProgram.setComputeUnitLimit({ units: 200_000 + (++this.airdrops % 1_000_000) }));
      tx = build();
    }
    const signature = flat(bs58.encode(tx.signatures[0]!));
    const err = this.land(tx, signature);
    if (err !== null) throw new RpcError(-32603, `airdrop failed: ${errorText(err)}`);
    return signature;
  }

  /** An account as getAccountInfo gives it (null: it does not exist). */
  accountJson(address: string, encoding: string | undefined): unknown {
    const acc = this.svm.getAccount(key(address));
    if (!acc) return null;
    const base = { executable: acc.executable, lamports: acc.lamports, owner: acc.owner.toBase58(), rentEpoch: 0, space: acc.data.length };
    if (encoding === 'jsonParsed') {
      const parsed = this.parseTokenAccount(acc.owner.toBase58(), Buffer.from(acc.data));
      if (parsed) return { ...base, data: parsed };
    }
    if (encoding === 'base58') return { ...base, data: [bs58.encode(acc.data), 'base58'] };
    return { ...base, data: [Buffer.from(acc.data).toString('base64'), 'base64'] };
  }

  /** The token accounts (of either token program) owned by `owner` among the accounts ever touched. */
  tokenAccountsByOwner(owner: PublicKey, filter: { programId?: string; mint?: string } | undefined, encoding: string | undefined): unknown[] {
    const out: unknown[] = [];
    for (const address of this.known) {
      const acc = this.svm.getAccount(new PublicKey(address));
      if (!acc || !isTokenAccount(acc.owner.toBase58(), acc.data)) continue;
      if (filter?.programId && acc.owner.toBase58() !== filter.programId) continue;
      const data = Buffer.from(acc.data);
      if (filter?.mint && bs58.encode(data.subarray(0, 32)) !== filter.mint) continue;
      if (!new PublicKey(data.subarray(32, 64)).equals(owner)) continue;
      out.push({ pubkey: address, account: this.accountJson(address, encoding) });
    }
    return out;
  }

  private parseTokenAccount(program: string, data: Buffer): unknown {
    if (!isTokenAccount(program, data)) return undefined;
    const mint = new PublicKey(data.subarray(0, 32));
    const decimals = this.mintDecimals(mint);
    const amount = data.readBigUInt64LE(64);
    const state = data[108] === 2 ? 'frozen' : data[108] === 1 ? 'initialized' : 'uninitialized';
    const ui = Number(amount) / 10 ** decimals;
    return {
      program: program === TOKEN_PROGRAM_ID.toBase58() ? 'spl-token' : 'spl-token-2022',
      parsed: {
        type: 'account',
        info: {
          mint: mint.toBase58(),
          owner: new PublicKey(data.subarray(32, 64)).toBase58(),
          isNative: data.readUInt32LE(109) === 1,
          state,
          tokenAmount: { amount: amount.toString(), decimals, uiAmount: ui, uiAmountString: String(ui) },
        },
      },
      space: data.length,
    };
  }
}
