import { type Hex, getAddress, parseTransaction } from 'viem';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Action, Intent } from './intent.js';

const ERC20_TRANSFER = '0xa9059cbb';
/** Selectors that hand over tokens or control of them: named in the intent so the audit says what was asked. */
const KNOWN_SELECTORS: Record<string, string> = {
  '0x095ea7b3': 'approve(address,uint256)',
  '0x39509351': 'increaseAllowance(address,uint256)',
  '0xd505accf': 'permit(address,address,uint256,uint256,uint8,bytes32,bytes32)',
  '0xa22cb465': 'setApprovalForAll(address,bool)',
  '0x23b872dd': 'transferFrom(address,address,uint256)',
};

/**
 * Decodes an unsigned serialized EVM transaction into an intent for `from` (the signing wallet: an
 * unsigned transaction names no sender). Only EIP-1559 and EIP-155 legacy transactions for
 * `chainId` can be signed; a legacy transaction without a chain id (replayable on every EVM chain),
 * another chain's id or another type comes back `unsignable`. ERC-20 `transfer` is read; any other
 * calldata is a contract call with its selector.
 * Throws VALIDATION_FAILED (not hex, not a transaction, or already signed).
 */
export function decodeEvmTransaction(serializedHex: string, options: { from: string; chainId: number }): Intent {
  let tx: ReturnType<typeof parseTransaction>;
  try {
    if (!/^0x[0-9a-fA-F]+$/.test(serializedHex)) throw new Error('not hex');
    tx = parseTransaction(serializedHex as Hex);
  } catch (e) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a serialized EVM transaction', { cause: e });
  }
  if (tx.r !== undefined || tx.s !== undefined) throw new FleetError(ErrorCode.VALIDATION_FAILED, 'the transaction is already signed');
  const from = getAddress(options.from);
  const value = tx.value ?? 0n;
  const gas = tx.gas ?? 0n;
  const actions: Action[] = [];
  const data = tx.data && tx.data !== '0x' ? tx.data.toLowerCase() : undefined;
  if (!tx.to) {
    actions.push({ kind: 'unknown', reason: 'contract creation' });
  } else if (!data) {
    actions.push({ kind: 'native-transfer', from, to: getAddress(tx.to), amount: value.toString() });
  } else {
    const contract = getAddress(tx.to);
    const selector = data.slice(0, 10);
    // transfer(address,uint256): exactly two words, the address word left-padded with zeros.
    if (selector === ERC20_TRANSFER && data.length === 10 + 128 && /^0{24}$/.test(data.slice(10, 34))) {
      actions.push({
        kind: 'token-transfer',
        program: contract,
        token: contract,
        from,
        to: getAddress(`0x${data.slice(34, 74)}`),
        amount: BigInt(`0x${data.slice(74)}`).toString(),
      });
      if (value > 0n) actions.push({ kind: 'native-transfer', from, to: contract, amount: value.toString() });
    } else {
      const name = KNOWN_SELECTORS[selector];
      actions.push({ kind: 'contract-call', contract, selector, ...(name ? { name } : {}), value: value.toString() });
    }
  }

  let unsignable: string | undefined;
  let fee: Intent['fee'];
  if (tx.type === 'eip1559') {
    fee = { max: (gas * (tx.maxFeePerGas ?? 0n)).toString(), detail: { gas: gas.toString(), maxFeePerGas: String(tx.maxFeePerGas ?? 0n) } };
  } else if (tx.type === 'legacy') {
    fee = { max: (gas * (tx.gasPrice ?? 0n)).toString(), detail: { gas: gas.toString(), gasPrice: String(tx.gasPrice ?? 0n) } };
  } else {
    fee = { max: '0', detail: {} };
    unsignable = `transaction type ${String(tx.type)} is not signed (EIP-1559 and EIP-155 legacy only)`;
  }
  if (!unsignable && tx.chainId === undefined) unsignable = 'legacy transaction without a chain id (EIP-155): it could be replayed on every EVM chain';
  else if (!unsignable && tx.chainId !== options.chainId) unsignable = `chain id ${tx.chainId} is not this service's chain ${options.chainId}`;

  return {
    chain: 'ETH',
    from,
    actions,
    fee,
    expiry: { kind: 'none', reason: `valid until nonce ${tx.nonce ?? 0} of the sender is used` },
    ...(unsignable ? { unsignable } : {}),
  };
}
