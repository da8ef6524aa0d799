import { PublicKey, SystemProgram, VersionedTransaction } from '@solana/web3.js';
import bs58 from 'bs58';
import { ed25519 } from '@noble/curves/ed25519.js';
import { RpcError } from './errors.js';
import type { Landed } from './ledger.js';

// The wire forms of the runtime: decoding what clients send, and encoding landed transactions as a
// validator's getTransaction answers.

/**
 * bs58 builds its string one character at a time: V8 keeps that as a rope of about 90 strings
 * (some 3 KB for a signature). Kept strings are copied flat (about 100 bytes).
 */
export function flat(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

export function key(address: unknown): PublicKey {
  return new PublicKey(String(address));
}

export function decodeTx(encoded: string, encoding: string | undefined): VersionedTransaction {
  // The RPC's default encoding is base58 (deprecated, but still the default); web3.js sends base64.
  const bytes = encoding === 'base64' ? Buffer.from(encoded, 'base64') : bs58.decode(encoded);
  return VersionedTransaction.deserialize(bytes);
}

export function verifySignatures(tx: VersionedTransaction): boolean {
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

const SYSTEM_PROGRAM = SystemProgram.programId.toBase58();

/**
 * A landed transaction as a validator's getTransaction gives it. `version` is present only when
 * the client names a maxSupportedTransactionVersion; a v0 transaction without it is refused with
 * the validator's -32015.
 */
export function transactionJson(landed: Landed, encoding: string, maxVersion: unknown): unknown {
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
      parsed
        ? parsedInstruction(allKeys, ix.programIdIndex, [...ix.accountKeyIndexes], ix.data, null)
        : { programIdIndex: ix.programIdIndex, accounts: [...ix.accountKeyIndexes], data: bs58.encode(ix.data), stackHeight: null },
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
      message.addressTableLookups = m.addressTableLookups.map((l) => ({
        accountKey: l.accountKey.toBase58(),
        writableIndexes: [...l.writableIndexes],
        readonlyIndexes: [...l.readonlyIndexes],
      }));
    }
    transaction = { signatures, message };
  } else {
    throw new RpcError(-32602, `Invalid params: unknown variant \`${encoding}\`, expected one of \`binary\`, \`base64\`, \`base58\`, \`json\`, \`jsonParsed\``);
  }
  const inner = parsed
    ? landed.inner.map((g) => ({
        index: g.index,
        instructions: g.instructions.map((i) => parsedInstruction(allKeys, i.programIdIndex, i.accounts, bs58.decode(i.data), i.stackHeight)),
      }))
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
      preTokenBalances: landed.preTokenBalances,
      postTokenBalances: landed.postTokenBalances,
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
