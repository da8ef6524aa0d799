import assert from 'node:assert/strict';
import { Keypair, PublicKey } from '@solana/web3.js';
import { getAddress } from 'viem';
import { publicKeyToAddress } from 'viem/accounts';
import { Ed25519PublicKey } from '@aptos-labs/ts-sdk';
import { bytesToHex } from '@noble/hashes/utils.js';
import { isFleetError } from '@wallet-fleet/contracts';
import { aptosAddress, ethereumAddress, isValidAddress, localEd25519Signer, localSecp256k1Signer, solanaAddress } from '../src/index.js';

describe('addresses', () => {
  it('should derive the Solana address web3.js derives', () => {
    for (let i = 0; i < 50; i++) {
      const kp = Keypair.generate();
      assert.equal(solanaAddress(kp.publicKey.toBytes()), kp.publicKey.toBase58());
      const signer = localEd25519Signer();
      assert.equal(solanaAddress(signer.publicKey), new PublicKey(signer.publicKey).toBase58());
    }
  });

  it('should derive the EIP-55 Ethereum address viem derives', () => {
    for (let i = 0; i < 50; i++) {
      const { publicKey } = localSecp256k1Signer();
      const expected = publicKeyToAddress(`0x${bytesToHex(publicKey)}`);
      assert.equal(ethereumAddress(publicKey), expected);
      assert.equal(getAddress(expected.toLowerCase()), expected);
    }
  });

  it('should derive the Aptos address the Aptos SDK derives', () => {
    for (let i = 0; i < 50; i++) {
      const { publicKey } = localEd25519Signer();
      const expected = new Ed25519PublicKey(publicKey).authKey().derivedAddress().toStringLong();
      assert.equal(aptosAddress(publicKey), expected);
    }
  });

  it('should refuse public keys of the wrong length with VALIDATION_FAILED', () => {
    assert.throws(
      () => solanaAddress(new Uint8Array(33)),
      (e) => isFleetError(e, 'VALIDATION_FAILED'),
    );
    assert.throws(
      () => ethereumAddress(new Uint8Array(64)),
      (e) => isFleetError(e, 'VALIDATION_FAILED'),
    );
    assert.throws(
      () => ethereumAddress(new Uint8Array(65)),
      (e) => isFleetError(e, 'VALIDATION_FAILED'),
    );
    assert.throws(
      () => aptosAddress(new Uint8Array(31)),
      (e) => isFleetError(e, 'VALIDATION_FAILED'),
    );
  });

  it('should accept well-formed addresses and reject malformed ones per chain', () => {
    const sol = solanaAddress(localEd25519Signer().publicKey);
    const eth = ethereumAddress(localSecp256k1Signer().publicKey);
    const apt = aptosAddress(localEd25519Signer().publicKey);
    assert.equal(isValidAddress('SOL', sol), true);
    assert.equal(isValidAddress('SOL', `${sol.slice(0, -1)}0`), false); // 0 is not base58
    assert.equal(isValidAddress('SOL', eth), false);
    assert.equal(isValidAddress('ETH', eth), true);
    assert.equal(isValidAddress('ETH', eth.toLowerCase()), true);
    // A flipped letter case breaks the EIP-55 checksum.
    const i = eth.slice(2).search(/[a-fA-F]/) + 2;
    const c = eth[i]!;
    const flipped = eth.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + eth.slice(i + 1);
    assert.equal(isValidAddress('ETH', flipped), false);
    assert.equal(isValidAddress('ETH', sol), false);
    assert.equal(isValidAddress('APTOS', apt), true);
    assert.equal(isValidAddress('APTOS', '0x1'), true);
    assert.equal(isValidAddress('APTOS', `${apt}00`), false);
    assert.equal(isValidAddress('APTOS', sol), false);
  });
});
