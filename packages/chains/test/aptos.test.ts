import assert from 'node:assert/strict';
import {
  AccountAddress,
  ChainId,
  Deserializer,
  Ed25519PublicKey,
  RawTransaction,
  SignedTransaction,
  TransactionAuthenticatorEd25519,
  TransactionPayloadEntryFunction,
  EntryFunction,
  U64,
  generateSigningMessageForTransaction,
  SimpleTransaction,
} from '@aptos-labs/ts-sdk';
import { isFleetError } from '@wallet-fleet/contracts';
import { aptosAddress, localEd25519Signer, signAptosRawTransaction } from '../src/index.js';

function rawTransfer(sender: string, sequence: bigint): RawTransaction {
  // Built offline: no node to ask for the sequence number, gas price or chain id.
  const payload = new TransactionPayloadEntryFunction(EntryFunction.build('0x1::aptos_account', 'transfer', [], [AccountAddress.from('0x2'), new U64(1234n)]));
  return new RawTransaction(AccountAddress.from(sender), sequence, payload, 2000n, 100n, BigInt(Math.floor(Date.now() / 1000) + 600), new ChainId(4));
}

describe('Aptos signing', () => {
  it('should produce a signed transaction whose signature the Aptos SDK verifies', async () => {
    const signer = localEd25519Signer();
    const raw = rawTransfer(aptosAddress(signer.publicKey), 7n);
    const signedBytes = await signAptosRawTransaction(raw.bcsToBytes(), signer);

    const signed = SignedTransaction.deserialize(new Deserializer(signedBytes));
    assert.deepEqual(signed.raw_txn.bcsToBytes(), raw.bcsToBytes());
    const auth = signed.authenticator;
    assert.ok(auth instanceof TransactionAuthenticatorEd25519);
    const message = generateSigningMessageForTransaction(new SimpleTransaction(raw));
    assert.equal(auth.public_key.verifySignature({ message, signature: auth.signature }), true);
    assert.deepEqual(auth.public_key.toUint8Array(), signer.publicKey);
    assert.equal(new Ed25519PublicKey(signer.publicKey).authKey().derivedAddress().toStringLong(), signed.raw_txn.sender.toStringLong());
  });

  it('should sign 50 random raw transactions so that every signature verifies with the SDK', async () => {
    for (let i = 0; i < 50; i++) {
      const signer = localEd25519Signer();
      const raw = rawTransfer(aptosAddress(signer.publicKey), BigInt(Math.floor(Math.random() * 1e9)));
      const signed = SignedTransaction.deserialize(new Deserializer(await signAptosRawTransaction(raw.bcsToBytes(), signer)));
      const auth = signed.authenticator as TransactionAuthenticatorEd25519;
      const message = generateSigningMessageForTransaction(new SimpleTransaction(raw));
      assert.equal(auth.public_key.verifySignature({ message, signature: auth.signature }), true, `tx ${i}`);
    }
  });

  it('should refuse a raw transaction whose sender is another account', async () => {
    const signer = localEd25519Signer();
    const raw = rawTransfer(aptosAddress(localEd25519Signer().publicKey), 0n);
    await assert.rejects(signAptosRawTransaction(raw.bcsToBytes(), signer), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });

  it('should refuse bytes that are not a raw transaction', async () => {
    const signer = localEd25519Signer();
    await assert.rejects(signAptosRawTransaction(new Uint8Array([1, 2, 3]), signer), (e) => isFleetError(e, 'VALIDATION_FAILED'));
    const raw = rawTransfer(aptosAddress(signer.publicKey), 0n).bcsToBytes();
    const trailing = new Uint8Array([...raw, 0]);
    await assert.rejects(signAptosRawTransaction(trailing, signer), (e) => isFleetError(e, 'VALIDATION_FAILED'));
  });

  it('should refuse to return a signature that does not verify', async () => {
    const signer = localEd25519Signer();
    const broken = { publicKey: signer.publicKey, sign: async () => new Uint8Array(64).fill(7) };
    const raw = rawTransfer(aptosAddress(signer.publicKey), 0n);
    await assert.rejects(signAptosRawTransaction(raw.bcsToBytes(), broken), (e) => isFleetError(e, 'SIGNING_FAILED'));
  });
});
