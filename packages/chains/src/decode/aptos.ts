import { Deserializer, RawTransaction, TransactionPayloadEntryFunction } from '@aptos-labs/ts-sdk';
import { ErrorCode, FleetError } from '@wallet-fleet/contracts';
import type { Action, Intent } from './intent.js';

const APT = '0x1::aptos_coin::AptosCoin';

/**
 * Decodes a BCS Aptos RawTransaction into an intent. Read: `0x1::aptos_account::transfer` and
 * `0x1::coin::transfer<0x1::aptos_coin::AptosCoin>`; any other entry function is an unknown action
 * named `address::module::function`, scripts and multisig payloads are unknown without a name. A
 * chain id other than `chainId` comes back `unsignable`.
 * Throws VALIDATION_FAILED (not a BCS raw transaction).
 */
export function decodeAptosTransaction(bytes: Uint8Array, options: { chainId: number }): Intent {
  let raw: RawTransaction;
  try {
    const d = new Deserializer(bytes);
    raw = RawTransaction.deserialize(d);
    if (d.remaining() !== 0) throw new Error('trailing bytes');
  } catch (e) {
    throw new FleetError(ErrorCode.VALIDATION_FAILED, 'not a BCS Aptos raw transaction', { cause: e });
  }
  const from = raw.sender.toStringLong();
  const action = ((): Action => {
    if (!(raw.payload instanceof TransactionPayloadEntryFunction)) return { kind: 'unknown', reason: 'not an entry function call' };
    const ef = raw.payload.entryFunction;
    const program = `${ef.module_name.address.toString()}::${ef.module_name.name.identifier}::${ef.function_name.identifier}`;
    const typeArgs = ef.type_args.map((t) => t.toString());
    const args = ef.args.map((a) => (a as unknown as { value?: { value?: unknown } }).value?.value);
    const isTransfer =
      (program === '0x1::aptos_account::transfer' && typeArgs.length === 0) ||
      (program === '0x1::coin::transfer' && typeArgs.length === 1 && typeArgs[0] === APT);
    const [to, amount] = args;
    if (isTransfer && args.length === 2 && to instanceof Uint8Array && to.length === 32 && amount instanceof Uint8Array && amount.length === 8) {
      return {
        kind: 'native-transfer',
        from,
        to: `0x${Buffer.from(to).toString('hex')}`,
        amount: new DataView(amount.buffer, amount.byteOffset, 8).getBigUint64(0, true).toString(),
      };
    }
    return { kind: 'unknown', program: typeArgs.length ? `${program}<${typeArgs.join(',')}>` : program, reason: 'entry function not understood' };
  })();
  const chainId = raw.chain_id.chainId;
  return {
    chain: 'APTOS',
    from,
    actions: [action],
    fee: {
      max: (raw.max_gas_amount * raw.gas_unit_price).toString(),
      detail: { maxGasAmount: raw.max_gas_amount.toString(), gasUnitPrice: raw.gas_unit_price.toString() },
    },
    expiry: { kind: 'timestamp', unixSeconds: Number(raw.expiration_timestamp_secs) },
    ...(chainId !== options.chainId ? { unsignable: `chain id ${chainId} is not this service's chain ${options.chainId}` } : {}),
  };
}
