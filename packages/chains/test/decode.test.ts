// Decoders against transactions serialized by the chains' own SDKs: what a caller could send us.
import assert from 'node:assert/strict';
import { AccountAddress, ChainId, EntryFunction, RawTransaction, TransactionPayloadEntryFunction, U64, parseTypeTag } from '@aptos-labs/ts-sdk';
import {
  AuthorityType,
  TOKEN_2022_PROGRAM_ID,
  TOKEN_PROGRAM_ID,
  createApproveInstruction,
  createAssociatedTokenAccountIdempotentInstruction,
  createAssociatedTokenAccountInstruction,
  createCloseAccountInstruction,
  createSetAuthorityInstruction,
  createTransferCheckedInstruction,
  createTransferInstruction,
  getAssociatedTokenAddressSync,
} from '@solana/spl-token';
import {
  AddressLookupTableAccount,
  ComputeBudgetProgram,
  Keypair,
  PublicKey,
  SystemProgram,
  Transaction,
  TransactionInstruction,
  TransactionMessage,
  VersionedTransaction,
} from '@solana/web3.js';
import { isFleetError } from '@wallet-fleet/contracts';
import { encodeFunctionData, erc20Abi, maxUint256, parseGwei, serializeTransaction } from 'viem';
import { decodeAptosTransaction, decodeEvmTransaction, decodeSolanaTransaction } from '../src/index.js';

const BLOCKHASH = '4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi';
const MEMO = new PublicKey('MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr');

describe('transaction decoders', () => {
  describe('Solana', () => {
    const wallet = Keypair.generate().publicKey;
    const other = Keypair.generate().publicKey;
    const mint = Keypair.generate().publicKey;
    const serialize = (...ixs: TransactionInstruction[]) =>
      new Transaction({ feePayer: wallet, recentBlockhash: BLOCKHASH }).add(...ixs).serialize({ requireAllSignatures: false, verifySignatures: false });
    const decode = (bytes: Uint8Array) => decodeSolanaTransaction(bytes, { wallet: wallet.toBase58() });

    it('should read a SOL transfer, a memo and a compute budget, with the fee they allow at most and the blockhash expiry', () => {
      const intent = decode(
        serialize(
          ComputeBudgetProgram.setComputeUnitLimit({ units: 300_000 }),
          ComputeBudgetProgram.setComputeUnitPrice({ microLamports: 10_000 }),
          SystemProgram.transfer({ fromPubkey: wallet, toPubkey: other, lamports: 123_456_789n }),
          new TransactionInstruction({ programId: MEMO, keys: [], data: Buffer.from('invoice 42') }),
        ),
      );
      assert.equal(intent.chain, 'SOL');
      assert.equal(intent.from, wallet.toBase58());
      assert.deepEqual(intent.actions, [
        { kind: 'compute-budget', unitLimit: 300_000 },
        { kind: 'compute-budget', microLamportsPerUnit: '10000' },
        { kind: 'native-transfer', from: wallet.toBase58(), to: other.toBase58(), amount: '123456789' },
        { kind: 'memo', text: 'invoice 42' },
      ]);
      // one signature (5000) + 300,000 units × 0.01 lamport
      assert.equal(intent.fee.max, String(5000 + 3000));
      assert.deepEqual(intent.expiry, { kind: 'blockhash', blockhash: BLOCKHASH });
      assert.equal(intent.unsignable, undefined);
    });

    it('should read SPL Token and Token-2022 transfers, transferChecked with its mint, account creation and ATA creation', () => {
      const source = getAssociatedTokenAddressSync(mint, wallet);
      const dest = getAssociatedTokenAddressSync(mint, other);
      const dest22 = getAssociatedTokenAddressSync(mint, other, false, TOKEN_2022_PROGRAM_ID);
      const created = Keypair.generate().publicKey;
      const intent = decode(
        serialize(
          SystemProgram.createAccount({ fromPubkey: wallet, newAccountPubkey: created, lamports: 2_039_280, space: 165, programId: TOKEN_PROGRAM_ID }),
          createAssociatedTokenAccountInstruction(wallet, dest, other, mint),
          createAssociatedTokenAccountIdempotentInstruction(wallet, dest22, other, mint, TOKEN_2022_PROGRAM_ID),
          createTransferInstruction(source, dest, wallet, 5n),
          createTransferCheckedInstruction(source, mint, dest, wallet, 7_000_000n, 6),
          createTransferCheckedInstruction(source, mint, dest22, wallet, 2n ** 64n - 1n, 9, [], TOKEN_2022_PROGRAM_ID),
        ),
      );
      const t = TOKEN_PROGRAM_ID.toBase58();
      const t22 = TOKEN_2022_PROGRAM_ID.toBase58();
      assert.deepEqual(intent.actions, [
        { kind: 'create-account', from: wallet.toBase58(), account: created.toBase58(), lamports: '2039280', owner: t },
        { kind: 'create-token-account', payer: wallet.toBase58(), account: dest.toBase58(), owner: other.toBase58(), mint: mint.toBase58(), idempotent: false },
        {
          kind: 'create-token-account',
          payer: wallet.toBase58(),
          account: dest22.toBase58(),
          owner: other.toBase58(),
          mint: mint.toBase58(),
          idempotent: true,
        },
        { kind: 'token-transfer', program: t, token: null, from: source.toBase58(), to: dest.toBase58(), amount: '5' },
        { kind: 'token-transfer', program: t, token: mint.toBase58(), from: source.toBase58(), to: dest.toBase58(), amount: '7000000', decimals: 6 },
        {
          kind: 'token-transfer',
          program: t22,
          token: mint.toBase58(),
          from: source.toBase58(),
          to: dest22.toBase58(),
          amount: '18446744073709551615',
          decimals: 9,
        },
      ]);
    });

    it('should call SetAuthority, Approve, CloseAccount to another address and unknown programs unknown, and CloseAccount to the wallet understood', () => {
      const account = getAssociatedTokenAddressSync(mint, wallet);
      const stranger = Keypair.generate().publicKey;
      const intent = decode(
        serialize(
          createSetAuthorityInstruction(account, wallet, AuthorityType.AccountOwner, other),
          createApproveInstruction(account, other, wallet, 1n),
          createCloseAccountInstruction(account, other, wallet),
          createCloseAccountInstruction(account, wallet, wallet),
          new TransactionInstruction({ programId: stranger, keys: [{ pubkey: wallet, isSigner: true, isWritable: true }], data: Buffer.from([1, 2, 3]) }),
        ),
      );
      const kinds = intent.actions.map((a) => [a.kind, 'program' in a ? a.program : undefined]);
      const t = TOKEN_PROGRAM_ID.toBase58();
      assert.deepEqual(kinds, [
        ['unknown', t],
        ['unknown', t],
        ['unknown', t],
        ['close-token-account', t],
        ['unknown', stranger.toBase58()],
      ]);
      assert.match((intent.actions[0] as { reason: string }).reason, /SetAuthority/);
    });

    it('should see a durable-nonce transaction as never expiring, its AdvanceNonceAccount unknown', () => {
      const nonceAccount = Keypair.generate().publicKey;
      const tx = new Transaction({
        feePayer: wallet,
        nonceInfo: { nonce: BLOCKHASH, nonceInstruction: SystemProgram.nonceAdvance({ noncePubkey: nonceAccount, authorizedPubkey: wallet }) },
      });
      tx.add(SystemProgram.transfer({ fromPubkey: wallet, toPubkey: other, lamports: 1 }));
      const intent = decode(tx.serialize({ requireAllSignatures: false, verifySignatures: false }));
      assert.equal(intent.expiry.kind, 'none');
      assert.equal(intent.actions[0]!.kind, 'unknown');
      assert.match((intent.actions[0] as { reason: string }).reason, /AdvanceNonceAccount/);
    });

    it('should read a v0 transaction, and call unknown an instruction whose accounts come from a lookup table', () => {
      const table = new AddressLookupTableAccount({
        key: Keypair.generate().publicKey,
        state: { deactivationSlot: 2n ** 64n - 1n, lastExtendedSlot: 0, lastExtendedSlotStartIndex: 0, addresses: [other] },
      });
      const message = new TransactionMessage({
        payerKey: wallet,
        recentBlockhash: BLOCKHASH,
        instructions: [SystemProgram.transfer({ fromPubkey: wallet, toPubkey: other, lamports: 10 })],
      }).compileToV0Message([table]);
      const intent = decode(new VersionedTransaction(message).serialize());
      assert.equal(intent.actions[0]!.kind, 'unknown');
      assert.match((intent.actions[0] as { reason: string }).reason, /lookup table/);
      const plain = new TransactionMessage({
        payerKey: wallet,
        recentBlockhash: BLOCKHASH,
        instructions: [SystemProgram.transfer({ fromPubkey: wallet, toPubkey: other, lamports: 10 })],
      });
      assert.deepEqual(decode(new VersionedTransaction(plain.compileToV0Message()).serialize()).actions, [
        { kind: 'native-transfer', from: wallet.toBase58(), to: other.toBase58(), amount: '10' },
      ]);
    });

    it('should refuse bytes that are not a transaction with VALIDATION_FAILED', () => {
      assert.throws(
        () => decode(new Uint8Array([1, 2, 3])),
        (e) => isFleetError(e, 'VALIDATION_FAILED'),
      );
    });
  });

  describe('EVM', () => {
    const from = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';
    const to = '0x000000000000000000000000000000000000dEaD';
    const token = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
    const attacker = '0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC';
    const base = { chainId: 31337, nonce: 3, gas: 60_000n, maxFeePerGas: parseGwei('20'), maxPriorityFeePerGas: parseGwei('1') } as const;
    const decode = (hex: string) => decodeEvmTransaction(hex, { from, chainId: 31337 });

    it('should read an EIP-1559 native transfer with its fee limit', () => {
      const intent = decode(serializeTransaction({ ...base, type: 'eip1559', to, value: 10n ** 18n }));
      assert.deepEqual(intent.actions, [{ kind: 'native-transfer', from, to, amount: '1000000000000000000' }]);
      assert.equal(intent.fee.max, (60_000n * parseGwei('20')).toString());
      assert.equal(intent.unsignable, undefined);
      assert.equal(intent.expiry.kind, 'none');
    });

    it('should read an ERC-20 transfer in an EIP-155 legacy transaction', () => {
      const data = encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [attacker, 42n] });
      const intent = decode(serializeTransaction({ type: 'legacy', chainId: 31337, nonce: 0, gas: 60_000n, gasPrice: parseGwei('2'), to: token, data }));
      assert.deepEqual(intent.actions, [{ kind: 'token-transfer', program: token, token, from, to: attacker, amount: '42' }]);
      assert.equal(intent.fee.max, (60_000n * parseGwei('2')).toString());
      assert.equal(intent.unsignable, undefined);
    });

    it('should call approve, increaseAllowance, setApprovalForAll and unknown calldata contract calls with their selector', () => {
      const approve = encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [attacker, maxUint256] });
      const increase = encodeFunctionData({
        abi: [{ type: 'function', name: 'increaseAllowance', inputs: [{ type: 'address' }, { type: 'uint256' }], outputs: [], stateMutability: 'nonpayable' }],
        args: [attacker, 1n],
      });
      const forAll = encodeFunctionData({
        abi: [{ type: 'function', name: 'setApprovalForAll', inputs: [{ type: 'address' }, { type: 'bool' }], outputs: [], stateMutability: 'nonpayable' }],
        args: [attacker, true],
      });
      const calls = [approve, increase, forAll, '0xdeadbeef00' as const].map(
        (data) => decode(serializeTransaction({ ...base, type: 'eip1559', to: token, data })).actions,
      );
      assert.deepEqual(
        calls.map((a) => (a[0]!.kind === 'contract-call' ? [a[0]!.contract, a[0]!.selector, a[0]!.name] : a[0]!.kind)),
        [
          [token, '0x095ea7b3', 'approve(address,uint256)'],
          [token, '0x39509351', 'increaseAllowance(address,uint256)'],
          [token, '0xa22cb465', 'setApprovalForAll(address,bool)'],
          [token, '0xdeadbeef', undefined],
        ],
      );
      // A transfer selector with extra words is not read as a transfer.
      const padded = `${encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [attacker, 1n] })}${'00'.repeat(32)}` as const;
      assert.equal(decode(serializeTransaction({ ...base, type: 'eip1559', to: token, data: padded })).actions[0]!.kind, 'contract-call');
    });

    it('should mark unsignable a legacy transaction without chain id, another chain id, and an EIP-2930 transaction', () => {
      assert.match(
        decode(serializeTransaction({ type: 'legacy', nonce: 0, gas: 21_000n, gasPrice: 1n, to, value: 1n })).unsignable ?? '',
        /without a chain id/,
      );
      assert.match(decode(serializeTransaction({ ...base, chainId: 1, type: 'eip1559', to, value: 1n })).unsignable ?? '', /chain id 1 /);
      assert.match(
        decode(serializeTransaction({ type: 'eip2930', chainId: 31337, nonce: 0, gas: 21_000n, gasPrice: 1n, to, value: 1n, accessList: [] })).unsignable ?? '',
        /eip2930/,
      );
    });

    it('should refuse what is not an unsigned transaction with VALIDATION_FAILED', () => {
      assert.throws(
        () => decode('hello'),
        (e) => isFleetError(e, 'VALIDATION_FAILED'),
      );
      const signed = serializeTransaction({ ...base, type: 'eip1559', to, value: 1n }, { r: '0x01', s: '0x02', yParity: 0 });
      assert.throws(
        () => decode(signed),
        (e) => isFleetError(e, 'VALIDATION_FAILED'),
      );
    });
  });

  describe('Aptos', () => {
    const sender = AccountAddress.from(`0x${'a1'.repeat(32)}`);
    const recipient = AccountAddress.from(`0x${'b0'.repeat(32)}`);
    const raw = (fn: EntryFunction, chainId = 4) =>
      new RawTransaction(sender, 7n, new TransactionPayloadEntryFunction(fn), 2000n, 100n, 1_900_000_000n, new ChainId(chainId)).bcsToBytes();
    const decode = (bytes: Uint8Array) => decodeAptosTransaction(bytes, { chainId: 4 });
    const transfer = { kind: 'native-transfer', from: sender.toStringLong(), to: recipient.toStringLong(), amount: '1234' };

    it('should read aptos_account::transfer and coin::transfer<AptosCoin> as APT transfers with fee and expiry', () => {
      const a = decode(raw(EntryFunction.build('0x1::aptos_account', 'transfer', [], [recipient, new U64(1234n)])));
      assert.deepEqual(a.actions, [transfer]);
      assert.equal(a.fee.max, '200000');
      assert.deepEqual(a.expiry, { kind: 'timestamp', unixSeconds: 1_900_000_000 });
      const c = decode(raw(EntryFunction.build('0x1::coin', 'transfer', [parseTypeTag('0x1::aptos_coin::AptosCoin')], [recipient, new U64(1234n)])));
      assert.deepEqual(c.actions, [transfer]);
    });

    it('should call another coin or entry function unknown, and mark another chain id unsignable', () => {
      const other = decode(raw(EntryFunction.build('0x1::coin', 'transfer', [parseTypeTag('0x1::fake_coin::FakeCoin')], [recipient, new U64(1n)])));
      assert.deepEqual(other.actions, [{ kind: 'unknown', program: '0x1::coin::transfer<0x1::fake_coin::FakeCoin>', reason: 'entry function not understood' }]);
      const rotate = decode(raw(EntryFunction.build('0x1::account', 'rotate_authentication_key_call', [], [new U64(1n)])));
      assert.equal(rotate.actions[0]!.kind, 'unknown');
      assert.match(decode(raw(EntryFunction.build('0x1::aptos_account', 'transfer', [], [recipient, new U64(1n)]), 1)).unsignable ?? '', /chain id 1 /);
    });
  });
});
