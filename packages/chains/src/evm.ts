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
  encodeFunctionData,
  erc20Abi,
  hexToBigInt,
  recoverTransactionAddress,
  type Hex,
  type TransactionSerializable,
} from 'viem';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';
import { ethereumAddress } from './addresses.js';
import type { Secp256k1Signer } from './signers.js';
import type { OnChainTransfer, TransactionReport, TransactionTransfers } from './transfers.js';

/** keccak-256 of `Transfer(address,address,uint256)`: topic 0 of every ERC-20 (and ERC-721) transfer log. */
const TRANSFER_TOPIC = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
const MAX_DECIMALS_CACHED = 10_000;
const DECIMALS_ABI = [{ type: 'function', name: 'decimals', stateMutability: 'view', inputs: [], outputs: [{ type: 'uint8' }] }] as const;

/**
 * When a landed transaction counts as final: `'finalized'` (the default) when its block is at or
 * below the node's `finalized` block tag (post-merge Ethereum and most L2 nodes; anvil keeps it 64
 * blocks behind its head); `{ confirmations: n }` for a node without finality: once `n` blocks
 * (its own included) stand on it.
 */
export type EvmFinality = 'finalized' | { confirmations: number };

export interface EvmAdapterOptions {
  rpcUrl: string;
  /** Deadline of one RPC call; default 10 s. */
  requestTimeoutMs?: number;
  /** See EvmFinality; default `'finalized'`. */
  finality?: EvmFinality;
}

const HALF_N = secp256k1.CURVE.n >> 1n;

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
  /**
   * An unsigned, serialized EIP-1559 transaction from `from` with `nonce` for `chainId`: `amount`
   * wei to `to`, or with `token` an ERC-20 `transfer(to, amount)` call to that contract. Fees
   * estimated from the node: the tip is `eth_maxPriorityFeePerGas` (the median tip of the last
   * blocks by `eth_feeHistory` when the node lacks it), `maxFeePerGas` twice the next block's base fee
   * plus the tip (room for base-fee rises over several full blocks); the gas is `eth_estimateGas`,
   * with a fifth more for a contract call (its state may change before it is mined). The estimate
   * runs the transfer against the pending state, so what would fail on chain fails here, before
   * anything is signed, and the wallet must hold the value plus the most the fees may cost.
   * Throws VALIDATION_FAILED, INVALID_RECIPIENT, INSUFFICIENT_FUNDS,
   * SUBMISSION_FAILED (the call would revert: a token balance too low, not a token), UNAVAILABLE.
   */
  buildTransfer(params: { from: string; to: string; amount: bigint; token?: string; nonce: number; chainId: number }): Promise<Hex>;
  /**
   * What became of a signed transaction that may or may not have been sent: `confirmed` (mined
   * and succeeded), `failed` (mined and reverted), `pending` (known to the node and not mined, or
   * unknown while its nonce is still unused: send the same bytes again), `expired` (unknown and its
   * sender's nonce already used by another transaction: it can never be mined). Throws
   * VALIDATION_FAILED (not a signed transaction), UNAVAILABLE.
   */
  fate(signedTransaction: Hex): Promise<'confirmed' | 'failed' | 'pending' | 'expired'>;
  /**
   * What the transaction `hash` paid to `to` in wei (its own value; see TransactionTransfers), with
   * its confirmations against the latest block. Throws VALIDATION_FAILED (not a transaction hash or
   * not an address), UNAVAILABLE (RPC down or failing).
   */
  nativeTransfers(hash: string, to: string): Promise<TransactionTransfers>;
  /**
   * Every transfer the transaction `hash` makes, each at its on-chain identity (see
   * OnChainTransfer): its own value at eventIndex 0 (when > 0), and every ERC-20 `Transfer` log
   * with an amount > 0 at its position in the receipt, the token's decimals read from the contract
   * (`decimals()`, cached per contract; a log from a contract without a working `decimals()` is
   * not a token we can count and is left out). `finality` follows the adapter's `finality` option.
   * A transaction whose block was reorganised away reports `not_found` (its receipt is gone) or
   * `pending` (a stale receipt whose block hash is no longer the canonical one at its height):
   * asking again is how a caller notices that a credit must be reversed.
   * Throws VALIDATION_FAILED (not a transaction hash), UNAVAILABLE (RPC down or failing, or a node
   * that does not serve the `finalized` tag while the adapter waits for it).
   */
  transfersOf(hash: string): Promise<TransactionReport>;
}

/** An EVM JSON-RPC adapter over HTTP (viem). */
export function createEvmAdapter(options: EvmAdapterOptions): EvmAdapter {
  const finality = options.finality ?? 'finalized';
  if (finality !== 'finalized' && !(Number.isSafeInteger(finality.confirmations) && finality.confirmations >= 1)) {
    throw FleetError.validation([{ path: 'finality.confirmations', message: 'must be a positive integer' }]);
  }
  // decimals() of a contract does not change: asked once per contract (a failed question is not kept).
  const decimalsOf = new Map<string, Promise<number | null>>();
  const client = createPublicClient({ transport: http(options.rpcUrl, { timeout: options.requestTimeoutMs ?? 10_000, retryCount: 0 }) });
  const rpc = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (e) {
      throw evmFailure(what, e);
    }
  };
  // viem reports an unknown transaction (or a missing receipt) as an error: that is an answer, not a failure.
  const found = async <T>(what: string, call: () => Promise<T>, notFound: string): Promise<T | undefined> => {
    try {
      return await call();
    } catch (e) {
      if (e instanceof BaseError && e.walk((x) => (x as { name?: string })?.name === notFound)) return undefined;
      throw evmFailure(what, e);
    }
  };
  const finalizedBlock = async (): Promise<bigint> => {
    try {
      return (await client.getBlock({ blockTag: 'finalized' })).number;
    } catch (e) {
      const failure = evmFailure('getBlock(finalized)', e);
      throw new FleetError(ErrorCode.UNAVAILABLE, `${failure.message} (a node without the finalized tag needs the adapter's finality: { confirmations })`, {
        cause: e,
      });
    }
  };
  const tokenDecimals = (contract: Hex): Promise<number | null> => {
    let known = decimalsOf.get(contract);
    if (!known) {
      known = client.readContract({ address: contract, abi: DECIMALS_ABI, functionName: 'decimals' }).then(
        (d) => d,
        (e: unknown) => {
          decimalsOf.delete(contract);
          // The contract answered, with a revert or nothing: it has no decimals() to count by.
          if (
            e instanceof BaseError &&
            e.walk((x) => ['ContractFunctionRevertedError', 'ContractFunctionZeroDataError'].includes((x as { name?: string })?.name ?? ''))
          )
            return null;
          throw evmFailure('decimals', e);
        },
      );
      decimalsOf.set(contract, known);
      // Anyone can deploy a contract that logs Transfers to our wallets: keep the cache bounded.
      if (decimalsOf.size > MAX_DECIMALS_CACHED) decimalsOf.delete(decimalsOf.keys().next().value!);
    }
    return known;
  };
  return {
    getBalance: (address) => rpc('getBalance', () => client.getBalance({ address: parseAddress(address) })),
    getChainId: () => rpc('getChainId', () => client.getChainId()),
    getTransactionCount: (address) => rpc('getTransactionCount', () => client.getTransactionCount({ address: parseAddress(address), blockTag: 'pending' })),
    async buildTransfer({ from, to, amount, token, nonce, chainId }) {
      const sender = parseAddress(from);
      let recipient: Hex;
      try {
        recipient = getAddress(to);
      } catch {
        throw new FleetError(ErrorCode.INVALID_RECIPIENT, 'recipient is not an Ethereum address');
      }
      if (typeof amount !== 'bigint' || amount <= 0n || amount >= 2n ** 256n) {
        throw FleetError.validation([{ path: 'amount', message: 'must be a positive 256-bit integer' }]);
      }
      if (!Number.isSafeInteger(nonce) || nonce < 0) throw FleetError.validation([{ path: 'nonce', message: 'must be a non-negative integer' }]);
      let call: { to: Hex; value: bigint; data?: Hex };
      if (token === undefined) call = { to: recipient, value: amount };
      else {
        let contract: Hex;
        try {
          contract = getAddress(token);
        } catch {
          throw FleetError.validation([{ path: 'asset.contract', message: 'not an Ethereum address' }]);
        }
        call = { to: contract, value: 0n, data: encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [recipient, amount] }) };
      }
      const [history, tip, balance] = await Promise.all([
        rpc('eth_feeHistory', () => client.getFeeHistory({ blockCount: 5, rewardPercentiles: [50] })),
        rpc('eth_maxPriorityFeePerGas', () => client.request({ method: 'eth_maxPriorityFeePerGas' })).then(
          (t) => hexToBigInt(t),
          () => null,
        ),
        rpc('getBalance', () => client.getBalance({ address: sender, blockTag: 'pending' })),
      ]);
      const baseFee = history.baseFeePerGas.at(-1) ?? 0n;
      const rewards = (history.reward ?? []).map((r) => r[0] ?? 0n).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const maxPriorityFeePerGas = tip ?? rewards[rewards.length >> 1] ?? 0n;
      const maxFeePerGas = 2n * baseFee + maxPriorityFeePerGas;
      const estimate = await client.estimateGas({ account: sender, ...call, maxFeePerGas, maxPriorityFeePerGas }).catch((e: unknown) => {
        const failure = evmFailure('eth_estimateGas', e);
        if (failure.code !== ErrorCode.UNAVAILABLE || !/revert/i.test(failure.message)) throw failure;
        throw new FleetError(ErrorCode.SUBMISSION_FAILED, `the transfer would revert: ${failure.message}`, { retryable: false, cause: e });
      });
      const gas = call.data ? (estimate * 6n) / 5n : estimate;
      // Nodes differ in whether an estimate checks the balance against the fees: checked here, so
      // that a transfer the wallet cannot pay for is refused before it is signed and takes a nonce.
      if (balance < call.value + gas * maxFeePerGas) {
        throw new FleetError(
          ErrorCode.INSUFFICIENT_FUNDS,
          `the wallet holds ${balance} wei, the transfer may cost ${call.value + gas * maxFeePerGas} wei (fees included)`,
        );
      }
      return serializeTransaction({ type: 'eip1559', chainId, nonce, gas, maxFeePerGas, maxPriorityFeePerGas, ...call });
    },
    async fate(signedTransaction) {
      let from: Hex;
      let nonce: number;
      try {
        const tx = parseTransaction(signedTransaction);
        if (tx.r === undefined) throw new Error('unsigned');
        nonce = tx.nonce ?? 0;
        from = await recoverTransactionAddress({ serializedTransaction: signedTransaction as never });
      } catch (e) {
        throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a signed EVM transaction', { cause: e });
      }
      const hash = keccak256(signedTransaction);
      const receipt = await found('getTransactionReceipt', () => client.getTransactionReceipt({ hash }), 'TransactionReceiptNotFoundError');
      if (receipt) return receipt.status === 'success' ? 'confirmed' : 'failed';
      if (await found('getTransaction', () => client.getTransaction({ hash }), 'TransactionNotFoundError')) return 'pending';
      // Unknown to the node: it can still be mined while its nonce is unused (send it again).
      const used = await rpc('getTransactionCount', () => client.getTransactionCount({ address: from, blockTag: 'latest' }));
      if (used <= nonce) return 'pending';
      // Mined meanwhile, or its nonce taken by another transaction: asked again to tell which.
      const late = await found('getTransactionReceipt', () => client.getTransactionReceipt({ hash }), 'TransactionReceiptNotFoundError');
      if (late) return late.status === 'success' ? 'confirmed' : 'failed';
      return 'expired';
    },
    async sendRawTransaction(signedTransaction, opts = {}) {
      const hash = await rpc('sendRawTransaction', () => client.sendRawTransaction({ serializedTransaction: signedTransaction })).catch((e: unknown) => {
        // The same bytes sent again while the node still holds them: the earlier send is the one to wait for.
        if (e instanceof FleetError && /already known|known transaction/i.test(e.message)) return keccak256(signedTransaction);
        throw e;
      });
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
    async nativeTransfers(hash, to) {
      if (typeof hash !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(hash))
        throw FleetError.validation([{ path: 'hash', message: 'not an EVM transaction hash' }]);
      const address = parseAddress(to);
      const h = hash as Hex;
      const tx = await found('getTransaction', () => client.getTransaction({ hash: h }), 'TransactionNotFoundError');
      if (!tx) return { status: 'not_found' };
      const receipt = await found('getTransactionReceipt', () => client.getTransactionReceipt({ hash: h }), 'TransactionReceiptNotFoundError');
      if (!receipt) return { status: 'pending', reason: 'not yet mined' };
      if (receipt.status !== 'success') return { status: 'failed', reason: 'transaction reverted' };
      const head = await rpc('getBlockNumber', () => client.getBlockNumber({ cacheTime: 0 }));
      const paid = tx.to !== null && tx.to !== undefined && tx.to.toLowerCase() === address.toLowerCase() && tx.value > 0n;
      return {
        status: 'landed',
        block: receipt.blockNumber,
        confirmations: head - receipt.blockNumber + 1n,
        finality: null,
        transfers: paid ? [{ to: address, amount: tx.value, position: { kind: 'evm-value' } }] : [],
      };
    },
    async transfersOf(hash) {
      if (typeof hash !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(hash))
        throw FleetError.validation([{ path: 'hash', message: 'not an EVM transaction hash' }]);
      const h = hash as Hex;
      const tx = await found('getTransaction', () => client.getTransaction({ hash: h }), 'TransactionNotFoundError');
      if (!tx) return { status: 'not_found' };
      const receipt = await found('getTransactionReceipt', () => client.getTransactionReceipt({ hash: h }), 'TransactionReceiptNotFoundError');
      if (!receipt) return { status: 'pending', reason: 'not yet mined' };
      const [block, head, finalized] = await Promise.all([
        found('getBlock', () => client.getBlock({ blockNumber: receipt.blockNumber }), 'BlockNotFoundError'),
        rpc('getBlockNumber', () => client.getBlockNumber({ cacheTime: 0 })),
        finality === 'finalized' ? finalizedBlock() : Promise.resolve(null),
      ]);
      // Some nodes keep serving the receipt of a transaction whose block lost a reorganisation.
      if (!block || block.hash !== receipt.blockHash) return { status: 'pending', reason: 'its block is no longer on the canonical chain' };
      if (receipt.status !== 'success') return { status: 'failed', reason: 'transaction reverted' };
      const transfers: OnChainTransfer[] = [];
      if (tx.to && tx.value > 0n)
        transfers.push({ eventIndex: 0, asset: { kind: 'native' }, from: getAddress(tx.from), to: getAddress(tx.to), amount: tx.value });
      for (const [position, log] of receipt.logs.entries()) {
        // ERC-20: from and to indexed, the amount as the 32-byte data. ERC-721 indexes its token id
        // as a fourth topic and is not a fungible amount.
        if (log.topics.length !== 3 || log.topics[0] !== TRANSFER_TOPIC || log.data.length !== 66) continue;
        const amount = BigInt(log.data);
        if (amount === 0n) continue;
        const contract = getAddress(log.address);
        const decimals = await tokenDecimals(contract);
        if (decimals === null) continue;
        transfers.push({
          eventIndex: position,
          asset: { kind: 'erc20', contract, decimals },
          from: getAddress(`0x${log.topics[1]!.slice(26)}`),
          to: getAddress(`0x${log.topics[2]!.slice(26)}`),
          amount,
        });
      }
      const confirmations = head - receipt.blockNumber + 1n;
      const final = finality === 'finalized' ? finalized !== null && finalized >= receipt.blockNumber : confirmations >= BigInt(finality.confirmations);
      return { status: 'landed', block: { number: receipt.blockNumber, hash: receipt.blockHash }, finality: { final, confirmations }, transfers };
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
  const isHttp = e instanceof BaseError && e.walk((x) => x?.constructor?.name === 'HttpRequestError' || x?.constructor?.name === 'TimeoutError') !== null;
  if (isHttp || /fetch failed|ECONNREFUSED|timed out/i.test(text)) {
    return new FleetError(ErrorCode.UNAVAILABLE, `EVM RPC ${what} failed: ${text}`, { cause: e });
  }
  if (what === 'sendRawTransaction') return new FleetError(ErrorCode.SUBMISSION_FAILED, text, { cause: e });
  return new FleetError(ErrorCode.UNAVAILABLE, `EVM RPC ${what} failed: ${text}`, { cause: e });
}

/** The hash a signed EVM transaction is known by (keccak-256 of its serialization). */
export const evmTransactionHash = (signedTransaction: Uint8Array): Hex => keccak256(signedTransaction);

/**
 * Signs an unsigned serialized EVM transaction (legacy with or without EIP-155 chain id, EIP-2930
 * or EIP-1559) with a secp256k1 signer: keccak-256 of the unsigned serialization, the signer's
 * low-s (r, s), and the recovery id found by trying both parities against the signer's address.
 * An unsigned transaction names no sender: the sender is whoever signs, so there is nothing to
 * compare against; the caller decides which wallet signs (and must set the nonce for it).
 * Throws VALIDATION_FAILED (not an unsigned transaction of a supported type) and SIGNING_FAILED
 * (the signer failed, returned high-s, or a signature that recovers to no address of the signer).
 */
export async function signEvmTransaction(unsignedSerializedHex: string, signer: Secp256k1Signer): Promise<{ signedTransaction: Hex; hash: Hex; from: string }> {
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
  let sig: { r: bigint; s: bigint; yParity?: 0 | 1 };
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
  const yParity = signer.verifiesAgainstPublicKey === true && sig.yParity !== undefined ? sig.yParity : recoveryBit(sig, digest, from);
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
