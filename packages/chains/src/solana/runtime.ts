import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { LiteSVM } from 'litesvm';
import {
  AddressLookupTableAccount,
  ComputeBudgetProgram,
  Keypair,
  PublicKey,
  SystemProgram,
  TransactionMessage,
  VersionedMessage,
  VersionedTransaction,
  type MessageAccountKeys,
} from '@solana/web3.js';
import bs58 from 'bs58';
import { ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID } from '@solana/spl-token';
import { ed25519 } from '@noble/curves/ed25519.js';

export interface SolanaRuntimeOptions {
  /** TCP port on 127.0.0.1; 0 (the default) picks a free one. */
  port?: number;
  host?: string;
  /** How often the slot and blockhash advance; default 400 ms (a cluster's slot time). */
  slotMs?: number;
}

export interface SolanaRuntime {
  readonly url: string;
  readonly port: number;
  /** The in-process VM, for tests that need to set accounts up directly. */
  readonly svm: LiteSVM;
  /** Credits `lamports` to `address` (base58); returns the airdrop's signature. */
  airdrop(address: string, lamports: bigint): string;
  stop(): Promise<void>;
}

const TOKEN_PROGRAMS = new Set([TOKEN_PROGRAM_ID.toBase58(), TOKEN_2022_PROGRAM_ID.toBase58()]);
const LAMPORTS_PER_SIGNATURE = 5000;
/** A blockhash stays valid for this many slots, as on a real cluster. */
const BLOCKHASH_WINDOW = 150;
const MAX_BODY = 2 * 1024 * 1024;
/**
 * Landed transactions kept (oldest dropped first, status and detail together), so a long-running
 * dev node does not grow without bound (about 0.6 KB of heap each for a transfer). They are also the replay
 * protection, so this must exceed the transactions of one blockhash window (150 slots).
 */
const MAX_STATUSES = 200_000;
/** Lamports the airdrop faucet starts with (a devnet faucet is effectively bottomless too). */
const FAUCET_LAMPORTS = 2n ** 62n;

// Display texts of solana_sdk's TransactionError / InstructionError (what a real validator puts in
// "Transaction simulation failed: …"); clients parse these, so they are kept verbatim.
const TX_ERRORS = [
  'AccountInUse', 'AccountLoadedTwice', 'AccountNotFound', 'ProgramAccountNotFound', 'InsufficientFundsForFee',
  'InvalidAccountForFee', 'AlreadyProcessed', 'BlockhashNotFound', 'CallChainTooDeep', 'MissingSignatureForFee',
  'InvalidAccountIndex', 'SignatureFailure', 'InvalidProgramForExecution', 'SanitizeFailure', 'ClusterMaintenance',
  'AccountBorrowOutstanding', 'WouldExceedMaxBlockCostLimit', 'UnsupportedVersion', 'InvalidWritableAccount',
  'WouldExceedMaxAccountCostLimit', 'WouldExceedAccountDataBlockLimit', 'TooManyAccountLocks',
  'AddressLookupTableNotFound', 'InvalidAddressLookupTableOwner', 'InvalidAddressLookupTableData',
  'InvalidAddressLookupTableIndex', 'InvalidRentPayingAccount', 'WouldExceedMaxVoteCostLimit',
  'WouldExceedAccountDataTotalLimit', 'MaxLoadedAccountsDataSizeExceeded', 'ResanitizationNeeded',
  'InvalidLoadedAccountsDataSizeLimit', 'UnbalancedTransaction', 'ProgramCacheHitMaxLimit', 'CommitCancelled',
] as const;
const TX_ERROR_TEXT: Record<string, string> = {
  AccountNotFound: 'Attempt to debit an account but found no record of a prior credit.',
  InsufficientFundsForFee: 'Insufficient funds for fee',
  AlreadyProcessed: 'This transaction has already been processed',
  BlockhashNotFound: 'Blockhash not found',
  SignatureFailure: 'Transaction did not pass signature verification',
};
const IX_ERRORS = [
  'GenericError', 'InvalidArgument', 'InvalidInstructionData', 'InvalidAccountData', 'AccountDataTooSmall',
  'InsufficientFunds', 'IncorrectProgramId', 'MissingRequiredSignature', 'AccountAlreadyInitialized',
  'UninitializedAccount', 'UnbalancedInstruction', 'ModifiedProgramId', 'ExternalAccountLamportSpend',
  'ExternalAccountDataModified', 'ReadonlyLamportChange', 'ReadonlyDataModified', 'DuplicateAccountIndex',
  'ExecutableModified', 'RentEpochModified', 'NotEnoughAccountKeys', 'AccountDataSizeChanged', 'AccountNotExecutable',
  'AccountBorrowFailed', 'AccountBorrowOutstanding', 'DuplicateAccountOutOfSync', 'InvalidError',
  'ExecutableDataModified', 'ExecutableLamportChange', 'ExecutableAccountNotRentExempt', 'UnsupportedProgramId',
  'CallDepth', 'MissingAccount', 'ReentrancyNotAllowed', 'MaxSeedLengthExceeded', 'InvalidSeeds', 'InvalidRealloc',
  'ComputationalBudgetExceeded', 'PrivilegeEscalation', 'ProgramEnvironmentSetupFailure', 'ProgramFailedToComplete',
  'ProgramFailedToCompile', 'Immutable', 'IncorrectAuthority', 'AccountNotRentExempt', 'InvalidAccountOwner',
  'ArithmeticOverflow', 'UnsupportedSysvar', 'IllegalOwner', 'MaxAccountsDataAllocationsExceeded',
  'MaxAccountsExceeded', 'MaxInstructionTraceLengthExceeded', 'BuiltinProgramsMustConsumeComputeUnits', 'BorshIoError',
] as const;

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

/** A landed transaction: what getSignatureStatuses and getTransaction report. */
interface Landed {
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
}

/**
 * A Solana JSON-RPC endpoint (HTTP only, no websocket) over an in-process litesvm: real
 * transaction execution and signature checks, one node, every transaction final at once. Serves
 * what @solana/web3.js's Connection calls for balances, transfers, token accounts and
 * confirmation by polling. Development and tests only.
 */
export async function startSolanaRuntime(options: SolanaRuntimeOptions = {}): Promise<SolanaRuntime> {
  // litesvm accepts only its latest blockhash; a real cluster accepts any of the last 150. Its
  // own check is off and the window is kept here, so a transaction built a moment before the
  // blockhash advanced still lands (and one built with an unknown blockhash still fails).
  // Loaded on demand: the native module is for development and tests, and services importing
  // this package for its adapters should not load it.
  const { LiteSVM, FailedTransactionMetadata, TransactionMetadata } = await import('litesvm');
  const svm = new LiteSVM().withBlockhashCheck(false);
  const recent: string[] = [svm.latestBlockhash()];
  let slot = 0;
  const genesisHash = bs58.encode(randomBytes(32));
  const statuses = new Map<string, Landed>();
  // litesvm cannot enumerate accounts: remember every key a transaction touched, for
  // getTokenAccountsByOwner.
  const known = new Set<string>();

  // Airdrops are real transfers from a faucet, as on devnet: they land, have a status and a
  // getTransaction answer like any other transaction.
  const faucet = Keypair.generate();
  svm.setAccount(faucet.publicKey, { lamports: Number(FAUCET_LAMPORTS), data: new Uint8Array(), owner: SystemProgram.programId, executable: false });
  let airdrops = 0;

  const record = (signature: string, landed: Landed): void => {
    statuses.set(signature, landed);
    if (statuses.size > MAX_STATUSES) statuses.delete(statuses.keys().next().value!);
  };

  /** Static keys, then the keys loaded from address lookup tables (as the runtime orders them). */
  const accountKeys = (tx: VersionedTransaction): MessageAccountKeys => {
    const lookups = tx.message.addressTableLookups.map((l) => {
      const acc = svm.getAccount(l.accountKey);
      return acc ? new AddressLookupTableAccount({ key: l.accountKey, state: AddressLookupTableAccount.deserialize(acc.data) }) : undefined;
    });
    const m = tx.message;
    if (m.version === 'legacy') return m.getAccountKeys();
    // A missing table: the transaction fails to load (AddressLookupTableNotFound); static keys only.
    if (lookups.some((l) => !l)) return m.getAccountKeys({ accountKeysFromLookups: { writable: [], readonly: [] } });
    return m.getAccountKeys({ addressLookupTableAccounts: lookups as AddressLookupTableAccount[] });
  };
  const balances = (keys: MessageAccountKeys): number[] => {
    const out: number[] = [];
    for (let i = 0; i < keys.length; i++) out.push(Number(svm.getBalance(keys.get(i)!) ?? 0n));
    return out;
  };

  /** Executes `tx` in the VM and records it with its balances before and after; returns its error (null: success). */
  const land = (tx: VersionedTransaction, signature: string): unknown => {
    const keys = accountKeys(tx);
    const preBalances = balances(keys);
    const result = svm.sendTransaction(tx);
    for (const k of tx.message.staticAccountKeys) known.add(flat(k.toBase58()));
    const failed = result instanceof FailedTransactionMetadata;
    const err = failed ? txErrorJson(result.err()) : null;
    if (err === 'AlreadyProcessed') throw preflightFailure(err, []);
    const meta = failed ? result.meta() : (result as InstanceType<typeof TransactionMetadata>);
    const postBalances = balances(keys);
    // Lamports only leave the accounts of a transaction as its fee (execution is balanced, or the
    // transaction fails as UnbalancedTransaction), so this is the fee charged, priority fee included.
    const fee = preBalances.reduce((a, b) => a + b, 0) - postBalances.reduce((a, b) => a + b, 0);
    record(signature, {
      slot,
      blockTime: Math.floor(Date.now() / 1000),
      err,
      wire: tx.serialize(),
      loaded: {
        writable: keys.accountKeysFromLookups?.writable.map((k) => flat(k.toBase58())) ?? [],
        readonly: keys.accountKeysFromLookups?.readonly.map((k) => flat(k.toBase58())) ?? [],
      },
      preBalances,
      postBalances,
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
  };

  const advance = (): void => {
    slot += 1;
    svm.warpToSlot(BigInt(slot));
    svm.expireBlockhash();
    recent.push(svm.latestBlockhash());
    if (recent.length > BLOCKHASH_WINDOW) recent.shift();
  };
  const timer = setInterval(advance, options.slotMs ?? 400);
  timer.unref();

  const context = () => ({ apiVersion: '2.1.0', slot });

  // litesvm 0.8's x86 JIT corrupts the V8 heap when a program makes cross-program invocations
  // under the old ABI (the Associated Token Account program always does): the process aborts
  // later, at some garbage collection, with std::bad_alloc (LiteSVM/litesvm#171, PoC in #352; the
  // suggested feature flag breaks the bundled token program). Refusing those transactions up front
  // turns a random crash of the whole process into a clear error.
  const refuseUnsafe = (tx: VersionedTransaction): void => {
    const keys = tx.message.staticAccountKeys;
    for (const ix of tx.message.compiledInstructions) {
      if (keys[ix.programIdIndex]?.equals(ASSOCIATED_TOKEN_PROGRAM_ID)) {
        throw new RpcError(
          -32602,
          'the local Solana runtime does not run Associated Token Account instructions (litesvm corrupts memory on cross-program invocations); create the token account with SystemProgram.createAccount and InitializeAccount3',
        );
      }
    }
  };

  const execute = (tx: VersionedTransaction, preflight: boolean): string => {
    refuseUnsafe(tx);
    const signature = flat(bs58.encode(tx.signatures[0] ?? new Uint8Array(64)));
    // A real node verifies signatures before anything else and answers -32003.
    if (!verifySignatures(tx)) throw new RpcError(-32003, 'Transaction signature verification failure');
    if (!recent.includes(tx.message.recentBlockhash)) {
      if (preflight) throw preflightFailure('BlockhashNotFound', []);
      return signature; // dropped silently, as a cluster does: it never lands
    }
    // litesvm forgets processed signatures after a few thousand transactions, so an old
    // transaction with a still-valid blockhash would execute again: replay protection, which a
    // cluster gives for the whole blockhash window, comes from our own status history.
    if (statuses.has(signature)) throw preflightFailure('AlreadyProcessed', []);
    if (preflight) {
      const sim = svm.simulateTransaction(tx);
      if (sim instanceof FailedTransactionMetadata) throw preflightFailure(txErrorJson(sim.err()), sim.meta().logs());
    }
    land(tx, signature);
    return signature;
  };

  const handlers: Record<string, (params: any[]) => unknown> = {
    getVersion: () => ({ 'solana-core': '2.1.0', 'feature-set': 0 }),
    getHealth: () => 'ok',
    getGenesisHash: () => genesisHash,
    getSlot: () => slot,
    getBlockHeight: () => slot,
    getEpochInfo: () => ({ absoluteSlot: slot, blockHeight: slot, epoch: 0, slotIndex: slot, slotsInEpoch: 432000, transactionCount: statuses.size }),
    getLatestBlockhash: () => ({
      context: context(),
      value: { blockhash: recent[recent.length - 1], lastValidBlockHeight: slot + BLOCKHASH_WINDOW },
    }),
    isBlockhashValid: ([hash]) => ({ context: context(), value: recent.includes(String(hash)) }),
    getBalance: ([address]) => ({ context: context(), value: Number(svm.getBalance(key(address)) ?? 0n) }),
    getAccountInfo: ([address, config]) => ({ context: context(), value: accountJson(String(address), config?.encoding) }),
    getMultipleAccounts: ([addresses, config]) => ({
      context: context(),
      value: (addresses as string[]).map((a) => accountJson(String(a), config?.encoding)),
    }),
    getMinimumBalanceForRentExemption: ([len]) => Number(svm.minimumBalanceForRentExemption(BigInt(len ?? 0))),
    getFeeForMessage: ([message]) => {
      const msg = VersionedMessage.deserialize(Buffer.from(String(message), 'base64'));
      return { context: context(), value: msg.header.numRequiredSignatures * LAMPORTS_PER_SIGNATURE };
    },
    requestAirdrop: ([address, lamports]) => airdrop(String(address), BigInt(lamports)),
    sendTransaction: ([encoded, config]) => execute(decodeTx(String(encoded), config?.encoding), !config?.skipPreflight),
    simulateTransaction: ([encoded, config]) => {
      const tx = decodeTx(String(encoded), config?.encoding);
      refuseUnsafe(tx);
      if (config?.sigVerify && !verifySignatures(tx)) throw new RpcError(-32003, 'Transaction signature verification failure');
      if (config?.replaceRecentBlockhash) tx.message.recentBlockhash = recent[recent.length - 1]!;
      else if (!recent.includes(tx.message.recentBlockhash)) {
        return { context: context(), value: { err: 'BlockhashNotFound', logs: [], accounts: null, unitsConsumed: 0, returnData: null } };
      }
      // A real node simulates without checking signatures unless asked to (web3.js relies on
      // that for unsigned transactions); litesvm always checks, so it is switched off around
      // this one call (single-threaded: nothing else runs in between).
      if (!config?.sigVerify) svm.withSigverify(false);
      let sim;
      try {
        sim = svm.simulateTransaction(tx);
      } finally {
        svm.withSigverify(true);
      }
      const err = sim instanceof FailedTransactionMetadata ? txErrorJson(sim.err()) : null;
      const meta = sim.meta();
      return {
        context: context(),
        value: {
          err,
          logs: meta.logs(),
          accounts: null,
          unitsConsumed: Number(meta.computeUnitsConsumed()),
          returnData: null,
        },
      };
    },
    getSignatureStatuses: ([signatures]) => ({
      context: context(),
      value: (signatures as string[]).map((s) => {
        const st = statuses.get(String(s));
        if (!st) return null;
        // One node, no forks: what executed is final.
        return {
          slot: st.slot,
          confirmations: null,
          err: st.err,
          status: st.err === null ? { Ok: null } : { Err: st.err },
          confirmationStatus: 'finalized',
        };
      }),
    }),
    getTransaction: ([signature, config]) => {
      const landed = statuses.get(String(signature));
      if (!landed) return null;
      const encoding = typeof config === 'string' ? config : (config?.encoding ?? 'json');
      const maxVersion = typeof config === 'object' ? config?.maxSupportedTransactionVersion : undefined;
      return transactionJson(landed, encoding, maxVersion);
    },
    getTokenAccountsByOwner: ([owner, filter, config]) => {
      const ownerKey = key(owner);
      const out: unknown[] = [];
      for (const address of known) {
        const acc = svm.getAccount(new PublicKey(address));
        if (!acc || !TOKEN_PROGRAMS.has(acc.owner.toBase58()) || acc.data.length < 165) continue;
        if (filter?.programId && acc.owner.toBase58() !== filter.programId) continue;
        const data = Buffer.from(acc.data);
        if (filter?.mint && bs58.encode(data.subarray(0, 32)) !== filter.mint) continue;
        if (!new PublicKey(data.subarray(32, 64)).equals(ownerKey)) continue;
        out.push({ pubkey: address, account: accountJson(address, config?.encoding) });
      }
      return { context: context(), value: out };
    },
  };

  function airdrop(address: string, lamports: bigint): string {
    const instructions = [SystemProgram.transfer({ fromPubkey: faucet.publicKey, toPubkey: key(address), lamports })];
    const build = () => {
      const message = new TransactionMessage({ payerKey: faucet.publicKey, recentBlockhash: recent[recent.length - 1]!, instructions }).compileToLegacyMessage();
      const tx = new VersionedTransaction(message);
      tx.sign([faucet]);
      return tx;
    };
    let tx = build();
    // Ed25519 signatures are deterministic: the same airdrop twice within one slot would be the same
    // transaction (refused as already processed). A compute-unit limit that differs per airdrop
    // makes it another one without changing what it costs.
    if (statuses.has(bs58.encode(tx.signatures[0]!))) {
      instructions.unshift(ComputeBudgetProgram.setComputeUnitLimit({ units: 200_000 + (++airdrops % 1_000_000) }));
      tx = build();
    }
    const signature = flat(bs58.encode(tx.signatures[0]!));
    const err = land(tx, signature);
    if (err !== null) throw new RpcError(-32603, `airdrop failed: ${errorText(err)}`);
    return signature;
  }

  function accountJson(address: string, encoding: string | undefined): unknown {
    const acc = svm.getAccount(key(address));
    if (!acc) return null;
    const base = { executable: acc.executable, lamports: acc.lamports, owner: acc.owner.toBase58(), rentEpoch: 0, space: acc.data.length };
    if (encoding === 'jsonParsed') {
      const parsed = parseTokenAccount(acc.owner.toBase58(), Buffer.from(acc.data));
      if (parsed) return { ...base, data: parsed };
    }
    if (encoding === 'base58') return { ...base, data: [bs58.encode(acc.data), 'base58'] };
    return { ...base, data: [Buffer.from(acc.data).toString('base64'), 'base64'] };
  }

  function parseTokenAccount(program: string, data: Buffer): unknown {
    if (!TOKEN_PROGRAMS.has(program) || data.length < 165) return undefined;
    const mint = new PublicKey(data.subarray(0, 32));
    const mintAcc = svm.getAccount(mint);
    const decimals = mintAcc && mintAcc.data.length >= 45 ? mintAcc.data[44]! : 0;
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

  const server: Server = createServer((req, res) => {
    void handle(req).then(
      (body) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      },
      () => {
        res.writeHead(400);
        res.end();
      },
    );
  });

  async function handle(req: IncomingMessage): Promise<unknown> {
    if (req.method !== 'POST') return { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'POST only' } };
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) throw new Error('body too large');
      chunks.push(c as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } };
    }
    return Array.isArray(body) ? body.map(call) : call(body);
  }

  function call(request: any): unknown {
    const id = request?.id ?? null;
    const handler = typeof request?.method === 'string' ? handlers[request.method] : undefined;
    if (!handler) return { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } };
    try {
      return { jsonrpc: '2.0', id, result: handler(Array.isArray(request.params) ? request.params : []) };
    } catch (e) {
      if (e instanceof RpcError) return { jsonrpc: '2.0', id, error: { code: e.code, message: e.message, ...(e.data === undefined ? {} : { data: e.data }) } };
      return { jsonrpc: '2.0', id, error: { code: -32602, message: `Invalid params: ${e instanceof Error ? e.message : String(e)}` } };
    }
  }

  const host = options.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => resolve());
    });
  } catch (e) {
    clearInterval(timer);
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  let stopping: Promise<void> | undefined;

  return {
    url: `http://${host}:${port}`,
    port,
    svm,
    airdrop,
    stop: () =>
      (stopping ??= new Promise<void>((resolve) => {
        clearInterval(timer);
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/**
 * bs58 builds its string one character at a time: V8 keeps that as a rope of about 90 strings
 * (some 3 KB for a signature). Kept strings are copied flat (about 100 bytes).
 */
function flat(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

function key(address: unknown): PublicKey {
  return new PublicKey(String(address));
}

function decodeTx(encoded: string, encoding: string | undefined): VersionedTransaction {
  // The RPC's default encoding is base58 (deprecated, but still the default); web3.js sends base64.
  const bytes = encoding === 'base64' ? Buffer.from(encoded, 'base64') : bs58.decode(encoded);
  return VersionedTransaction.deserialize(bytes);
}

function verifySignatures(tx: VersionedTransaction): boolean {
  const message = tx.message.serialize();
  const keys = tx.message.staticAccountKeys;
  const n = tx.message.header.numRequiredSignatures;
  if (tx.signatures.length !== n) return false;
  return tx.signatures.every((sig, i) => {
    const k = keys[i];
    return k !== undefined && ed25519Verify(sig, message, k.toBytes());
  });
}

function ed25519Verify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  try {
    return ed25519.verify(sig, msg, pub);
  } catch {
    return false;
  }
}

/** The JSON form a real RPC gives a TransactionError (`"BlockhashNotFound"`, `{"InstructionError":[0,{"Custom":1}]}`). */
function txErrorJson(err: unknown): unknown {
  if (typeof err === 'number') return TX_ERRORS[err] ?? `Unknown(${err})`;
  const e = err as Record<string, any>;
  if (typeof e?.index === 'number' && typeof e.err === 'function') {
    const inner = e.err();
    if (typeof inner === 'number') return { InstructionError: [e.index, IX_ERRORS[inner] ?? 'GenericError'] };
    if (typeof inner?.code === 'number') return { InstructionError: [e.index, { Custom: inner.code }] };
    if (typeof inner?.msg === 'string') return { InstructionError: [e.index, { BorshIoError: inner.msg }] };
    return { InstructionError: [e.index, 'GenericError'] };
  }
  if (typeof e?.index === 'number') return { DuplicateInstruction: e.index };
  if (typeof e?.accountIndex === 'number') {
    return String(e.constructor?.name).includes('Rent')
      ? { InsufficientFundsForRent: { account_index: e.accountIndex } }
      : { ProgramExecutionTemporarilyRestricted: { account_index: e.accountIndex } };
  }
  return String(err);
}

function errorText(err: unknown): string {
  if (typeof err === 'string') return TX_ERROR_TEXT[err] ?? err;
  const e = err as Record<string, any>;
  if (e?.InstructionError) {
    const [i, ie] = e.InstructionError as [number, any];
    const what = typeof ie?.Custom === 'number' ? `custom program error: 0x${ie.Custom.toString(16)}` : typeof ie === 'string' ? ie : JSON.stringify(ie);
    return `Error processing Instruction ${i}: ${what}`;
  }
  if (e?.InsufficientFundsForRent) return `Transaction results in an account (${e.InsufficientFundsForRent.account_index}) with insufficient funds for rent`;
  return JSON.stringify(err);
}

function preflightFailure(err: unknown, logs: string[]): RpcError {
  return new RpcError(-32002, `Transaction simulation failed: ${errorText(err)}`, {
    err,
    logs,
    accounts: null,
    unitsConsumed: 0,
    returnData: null,
  });
}

const SYSTEM_PROGRAM = SystemProgram.programId.toBase58();

/**
 * A landed transaction as a validator's getTransaction gives it. `version` is present only when
 * the client names a maxSupportedTransactionVersion; a v0 transaction without it is refused with
 * the validator's -32015.
 */
function transactionJson(landed: Landed, encoding: string, maxVersion: unknown): unknown {
  const tx = VersionedTransaction.deserialize(landed.wire);
  const m = tx.message;
  if (m.version !== 'legacy' && !(typeof maxVersion === 'number' && m.version <= maxVersion)) {
    throw new RpcError(
      -32015,
      `Transaction version (${m.version}) is not supported by the requesting client. Please try the request again with the following configuration parameter: "maxSupportedTransactionVersion": ${m.version}`,
    );
  }
  const signatures = tx.signatures.map((s) => bs58.encode(s));
  const staticKeys = m.staticAccountKeys.map((k) => k.toBase58());
  const allKeys = [...staticKeys, ...landed.loaded.writable, ...landed.loaded.readonly];
  const parsed = encoding === 'jsonParsed';
  let transaction: unknown;
  if (encoding === 'base64') transaction = [Buffer.from(landed.wire).toString('base64'), 'base64'];
  else if (encoding === 'base58') transaction = [bs58.encode(landed.wire), 'base58'];
  else if (encoding === 'json' || parsed) {
    const instructions = m.compiledInstructions.map((ix) =>
      parsed ? parsedInstruction(allKeys, ix.programIdIndex, [...ix.accountKeyIndexes], ix.data, null) : { programIdIndex: ix.programIdIndex, accounts: [...ix.accountKeyIndexes], data: bs58.encode(ix.data), stackHeight: null },
    );
    const message: Record<string, unknown> = parsed
      ? {
          accountKeys: allKeys.map((pubkey, i) => ({
            pubkey,
            signer: i < m.header.numRequiredSignatures,
            writable: m.isAccountWritable(i),
            source: i < staticKeys.length ? 'transaction' : 'lookupTable',
          })),
          recentBlockhash: m.recentBlockhash,
          instructions,
        }
      : { accountKeys: staticKeys, header: m.header, recentBlockhash: m.recentBlockhash, instructions };
    if (m.version !== 'legacy') {
      message.addressTableLookups = m.addressTableLookups.map((l) => ({ accountKey: l.accountKey.toBase58(), writableIndexes: [...l.writableIndexes], readonlyIndexes: [...l.readonlyIndexes] }));
    }
    transaction = { signatures, message };
  } else {
    throw new RpcError(-32602, `Invalid params: unknown variant \`${encoding}\`, expected one of \`binary\`, \`base64\`, \`base58\`, \`json\`, \`jsonParsed\``);
  }
  const inner = parsed
    ? landed.inner.map((g) => ({ index: g.index, instructions: g.instructions.map((i) => parsedInstruction(allKeys, i.programIdIndex, i.accounts, bs58.decode(i.data), i.stackHeight)) }))
    : landed.inner;
  return {
    slot: landed.slot,
    blockTime: landed.blockTime,
    transaction,
    meta: {
      err: landed.err,
      status: landed.err === null ? { Ok: null } : { Err: landed.err },
      fee: landed.fee,
      preBalances: landed.preBalances,
      postBalances: landed.postBalances,
      innerInstructions: inner,
      logMessages: landed.logs,
      preTokenBalances: [],
      postTokenBalances: [],
      rewards: [],
      // jsonParsed puts the loaded keys in accountKeys (source: lookupTable) instead.
      ...(parsed ? {} : { loadedAddresses: landed.loaded }),
      computeUnitsConsumed: landed.unitsConsumed,
    },
    ...(maxVersion === undefined || maxVersion === null ? {} : { version: m.version }),
  };
}

/** jsonParsed form of one instruction: System transfers parsed, everything else partially decoded. */
function parsedInstruction(keys: string[], programIdIndex: number, accounts: number[], data: Uint8Array, stackHeight: number | null): unknown {
  const programId = keys[programIdIndex]!;
  const buf = Buffer.from(data);
  // SystemInstruction::Transfer: u32 LE discriminator 2, u64 LE lamports.
  if (programId === SYSTEM_PROGRAM && buf.length === 12 && buf.readUInt32LE(0) === 2 && accounts.length >= 2) {
    return {
      program: 'system',
      programId,
      parsed: { type: 'transfer', info: { source: keys[accounts[0]!], destination: keys[accounts[1]!], lamports: Number(buf.readBigUInt64LE(4)) } },
      stackHeight,
    };
  }
  return { programId, accounts: accounts.map((i) => keys[i]), data: bs58.encode(data), stackHeight };
}
