import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import {
  createPublicClient,
  http,
  keccak256,
  numberToHex,
  parseTransaction,
  serializeTransaction,
  getAddress,
  BaseError,
  type Hex,
  type TransactionSerializable,
} from 'viem';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { ethereumAddress } from './addresses.js';
import type { Secp256k1Signer } from './signers.js';

const HALF_N = secp256k1.CURVE.n >> 1n;

export interface Anvil {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts a local anvil node (chain id 31337, ten funded dev accounts, instant mining) and resolves
 * once it answers eth_chainId. The binary comes from @foundry-rs/anvil's platform package, or
 * from `ANVIL_BIN`. Throws UNAVAILABLE when it cannot be found or does not come up in `startTimeoutMs`.
 */
export async function startAnvil(options: { port?: number; startTimeoutMs?: number } = {}): Promise<Anvil> {
  const bin = anvilBinary();
  const child = spawn(bin, ['--host', '127.0.0.1', '--port', String(options.port ?? 0), '--chain-id', '31337'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Do not leave an orphaned node behind when this process exits without calling stop().
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    // With --port 0 the chosen port is only known from anvil's "Listening on" line.
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new FleetError(ErrorCode.UNAVAILABLE, 'anvil did not start in time')), options.startTimeoutMs ?? 15_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Listening on [\d.]+:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          child.stdout!.removeAllListeners('data');
          child.stdout!.resume();
          resolve(Number(m[1]));
        }
        if (out.length > 100_000) out = out.slice(-1000);
      });
      child.stderr!.resume();
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new FleetError(ErrorCode.UNAVAILABLE, `anvil failed to start: ${e.message}`, { cause: e }));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new FleetError(ErrorCode.UNAVAILABLE, `anvil exited with ${code} before listening`));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    await waitForChainId(url, options.startTimeoutMs ?? 15_000);
    return { url, port, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

function anvilBinary(): string {
  if (process.env.ANVIL_BIN) return process.env.ANVIL_BIN;
  const platform = `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  try {
    // The platform package is an optional dependency of @foundry-rs/anvil, so resolve from there.
    const req = createRequire(import.meta.url);
    const wrapper = req.resolve('@foundry-rs/anvil/package.json');
    const pkg = createRequire(wrapper).resolve(`@foundry-rs/anvil-${platform}/package.json`);
    return join(dirname(pkg), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  } catch (e) {
    throw new FleetError(ErrorCode.UNAVAILABLE, `no anvil binary for ${platform} (set ANVIL_BIN)`, { cause: e });
  }
}

async function waitForChainId(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(1000),
      });
      const body = (await res.json()) as { result?: string };
      if (body.result) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new FleetError(ErrorCode.UNAVAILABLE, 'anvil did not answer eth_chainId in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface EvmAdapter {
  /** Wei held by `address`. Throws VALIDATION_FAILED, UNAVAILABLE. */
  getBalance(address: string): Promise<bigint>;
  /** The node's chain id. Throws UNAVAILABLE. */
  getChainId(): Promise<number>;
  /** Next nonce of `address` (pending block). Throws VALIDATION_FAILED, UNAVAILABLE. */
  getTransactionCount(address: string): Promise<number>;
  /**
   * Broadcasts a signed raw transaction and waits for its receipt; returns the hash and whether it
   * succeeded. Throws INSUFFICIENT_FUNDS, SUBMISSION_FAILED (rejected by the node or reverted),
   * UNAVAILABLE, TIMEOUT (sent, no receipt in `timeoutMs`: `details.hash` may still be mined).
   */
  sendRawTransaction(signedTransaction: Hex, options?: { timeoutMs?: number; pollMs?: number }): Promise<{ hash: Hex; blockNumber: bigint }>;
}

/** An EVM JSON-RPC adapter over HTTP (viem). */
export function createEvmAdapter(options: { rpcUrl: string; requestTimeoutMs?: number }): EvmAdapter {
  const client = createPublicClient({ transport: http(options.rpcUrl, { timeout: options.requestTimeoutMs ?? 10_000, retryCount: 0 }) });
  const rpc = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (e) {
      throw evmFailure(what, e);
    }
  };
  return {
    getBalance: (address) => rpc('getBalance', () => client.getBalance({ address: parseAddress(address) })),
    getChainId: () => rpc('getChainId', () => client.getChainId()),
    getTransactionCount: (address) => rpc('getTransactionCount', () => client.getTransactionCount({ address: parseAddress(address), blockTag: 'pending' })),
    async sendRawTransaction(signedTransaction, opts = {}) {
      const hash = await rpc('sendRawTransaction', () => client.sendRawTransaction({ serializedTransaction: signedTransaction }));
      let receipt;
      try {
        receipt = await client.waitForTransactionReceipt({ hash, timeout: opts.timeoutMs ?? 60_000, pollingInterval: opts.pollMs ?? 500, retryCount: 0 });
      } catch (e) {
        throw new FleetError(ErrorCode.TIMEOUT, `no receipt for ${hash}`, { retryable: false, details: { hash }, cause: e });
      }
      if (receipt.status !== 'success') {
        throw new FleetError(ErrorCode.SUBMISSION_FAILED, `transaction ${hash} reverted`, { details: { hash } });
      }
      return { hash, blockNumber: receipt.blockNumber };
    },
  };
}

function parseAddress(address: string): Hex {
  try {
    return getAddress(address);
  } catch {
    throw FleetError.validation([{ path: 'address', message: 'not an Ethereum address' }]);
  }
}

function evmFailure(what: string, e: unknown): FleetError {
  if (e instanceof FleetError) return e;
  const text = e instanceof BaseError ? `${e.shortMessage} ${e.details ?? ''}` : e instanceof Error ? e.message : String(e);
  if (/insufficient funds/i.test(text)) return new FleetError(ErrorCode.INSUFFICIENT_FUNDS, text, { cause: e });
  const isHttp = e instanceof BaseError && (e.walk((x) => x?.constructor?.name === 'HttpRequestError' || x?.constructor?.name === 'TimeoutError') !== null);
  if (isHttp || /fetch failed|ECONNREFUSED|timed out/i.test(text)) {
    return new FleetError(ErrorCode.UNAVAILABLE, `EVM RPC ${what} failed: ${text}`, { cause: e });
  }
  if (what === 'sendRawTransaction') return new FleetError(ErrorCode.SUBMISSION_FAILED, text, { cause: e });
  return new FleetError(ErrorCode.UNAVAILABLE, `EVM RPC ${what} failed: ${text}`, { cause: e });
}

/**
 * Signs an unsigned serialized EVM transaction (legacy with or without EIP-155 chain id, EIP-2930
 * or EIP-1559) with a secp256k1 signer: keccak-256 of the unsigned serialization, the signer's
 * low-s (r, s), and the recovery id found by trying both parities against the signer's address.
 * An unsigned transaction names no sender: the sender is whoever signs, so there is nothing to
 * compare against; the caller decides which wallet signs (and must set the nonce for it).
 * Throws VALIDATION_FAILED (not an unsigned transaction of a supported type) and SIGNING_FAILED
 * (the signer failed, returned high-s, or a signature that recovers to no address of the signer).
 */
export async function signEvmTransaction(
  unsignedSerializedHex: string,
  signer: Secp256k1Signer,
): Promise<{ signedTransaction: Hex; hash: Hex; from: string }> {
  let tx: TransactionSerializable & { r?: unknown; s?: unknown; v?: unknown; yParity?: unknown };
  try {
    if (!/^0x[0-9a-fA-F]+$/.test(unsignedSerializedHex)) throw new Error('not hex');
    tx = parseTransaction(unsignedSerializedHex as Hex) as typeof tx;
  } catch (e) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a serialized EVM transaction', { cause: e });
  }
  if (tx.r !== undefined || tx.s !== undefined) throw new FleetError(ErrorCode.VALIDATION_FAILED, 'the transaction is already signed');
  if (tx.type !== 'legacy' && tx.type !== 'eip2930' && tx.type !== 'eip1559') {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, `transaction type ${String(tx.type)} is not supported`);
  }
  const from = ethereumAddress(signer.publicKey);
  const digest = keccak256(serializeTransaction(tx), 'bytes');
  let sig: { r: bigint; s: bigint };
  try {
    sig = await signer.signDigest(digest);
  } catch (e) {
    if (e instanceof FleetError) throw e;
    throw new FleetError(ErrorCode.SIGNING_FAILED, 'the signer failed', { cause: e });
  }
  // Nodes reject high-s (EIP-2); the signer promises low-s, and a broken promise here would
  // otherwise surface as a misleading "insufficient funds" for the wrong recovered sender.
  if (sig.s <= 0n || sig.s > HALF_N || sig.r <= 0n || sig.r >= secp256k1.CURVE.n) {
    throw new FleetError(ErrorCode.SIGNING_FAILED, 'the signer returned a signature out of range or with high s');
  }
  const yParity = recoveryBit(sig, digest, from);
  if (yParity === undefined) throw new FleetError(ErrorCode.SIGNING_FAILED, "the signature does not recover to the signer's address");
  const signature = { r: numberToHex(sig.r, { size: 32 }), s: numberToHex(sig.s, { size: 32 }), yParity, v: BigInt(27 + yParity) };
  const signedTransaction = serializeTransaction(tx, signature);
  return { signedTransaction, hash: keccak256(signedTransaction), from };
}

function recoveryBit(sig: { r: bigint; s: bigint }, digest: Uint8Array, address: string): 0 | 1 | undefined {
  for (const bit of [0, 1] as const) {
    try {
      const pub = new secp256k1.Signature(sig.r, sig.s).addRecoveryBit(bit).recoverPublicKey(digest).toRawBytes(false);
      if (ethereumAddress(pub) === address) return bit;
    } catch {
      // this parity has no point on the curve
    }
  }
  return undefined;
}
