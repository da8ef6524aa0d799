// The signing policy in front of the key, against the real broker, database, KMS emulator and
// Solana runtime: what is refused never reaches the KMS (its signature count does not move).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { decodeEvmTransaction, localEd25519Signer, solanaAddress } from '@wallet-fleet/chains';
import { ErrorCode, isFleetError } from '@wallet-fleet/contracts';
import { type SolanaRuntime, startSolanaRuntime } from '@wallet-fleet/dev-runtimes';
import { startKmsEmulator } from '@wallet-fleet/kms-emulator';
import type { Broker } from '@wallet-fleet/messaging';
import { createFleetVhost, createSchemaName, type TestSchema, type TestVhost, waitFor } from '@wallet-fleet/testing';
import { AuthorityType, createSetAuthorityInstruction, getAssociatedTokenAddressSync } from '@solana/spl-token';
import { Connection, Keypair, PublicKey, SystemProgram, Transaction } from '@solana/web3.js';
import type { ChannelModel } from 'amqplib';
import fc from 'fast-check';
import pg from 'pg';
import {
  type Hex,
  type TransactionSerializable,
  encodeFunctionData,
  erc20Abi,
  getAddress,
  maxUint256,
  parseGwei,
  parseTransaction,
  recoverTransactionAddress,
  serializeTransaction,
} from 'viem';
import { caller, refusal, startWalletService, unusedChains, type WalletService, watchWalletEvents } from './support.js';
const BLOCKHASH = '4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi';
const SIGNATURE_FEE = 5000n;

interface AuditRecord {
  action: string;
  status: string;
  resource: { type: string; id: string };
  before?: Record<string, unknown>;
  after?: Record<string, unknown> & { intent?: { actions: { kind: string }[] }; decision?: { allowed: boolean; denial?: { rule: string } } };
  error?: { code: string };
}

describe('signing policy: decoded, within limits, or not signed', function () {
  this.timeout(60_000);
  let vhost: TestVhost;
  let schema: TestSchema;
  let kms: Awaited<ReturnType<typeof startKmsEmulator>>;
  let solana: SolanaRuntime;
  let service: WalletService;
  let client: Broker;
  let ops: Broker;
  let events: ChannelModel;
  let kmsSignatures = 0;
  const audit: AuditRecord[] = [];

  before(async () => {
    vhost = await createFleetVhost('wallet-policy');
    schema = await createSchemaName('wallet_policy');
    kms = await startKmsEmulator({
      port: 0,
      intercept: (method, _req, res) => {
        if (method === 'AsymmetricSign') kmsSignatures++;
        return res;
      },
    });
    solana = await startSolanaRuntime({ port: 0, slotMs: 50 });
    events = await watchWalletEvents(vhost, ['audit.wallet.#'], (m) => audit.push(JSON.parse(m.content.toString())));
    service = await startWalletService(vhost, schema, {
      KMS_ENDPOINT: kms.endpoint,
      SOLANA_RPC_URL: solana.url,
      ...unusedChains,
      SIGN_RATE_PER_MINUTE: '1000',
    });
    // The product's backend signs and transfers; operators set policies.
    client = await caller(vhost, 'backend');
    ops = await caller(vhost, 'ops');
  });

  after(async () => {
    await client?.stop();
    await ops?.stop();
    await service?.stop();
    await events?.close();
    await solana?.stop();
    await kms?.stop();
    await vhost?.drop();
    await schema?.drop();
  });

  const newAddress = () => solanaAddress(localEd25519Signer().publicKey);
  const wallet = (chain: 'SOL' | 'ETH', userId = `u-${randomUUID()}`) => client.request('wallet.management.create', { userId, chain });
  const solanaTx = (payer: string, ...ixs: Parameters<Transaction['add']>) =>
    new Transaction({ feePayer: new PublicKey(payer), recentBlockhash: BLOCKHASH })
      .add(...ixs)
      .serialize({ requireAllSignatures: false, verifySignatures: false })
      .toString('base64');
  const lamportsOf = async (address: string) => BigInt(await new Connection(solana.url, 'confirmed').getBalance(new PublicKey(address)));
  const auditOf = (walletId: string, status: string, what: (e: AuditRecord) => boolean) =>
    waitFor(() => audit.find((e) => e.resource.id === walletId && e.status === status && what(e)), { timeoutMs: 5000, what: `a ${status} audit event` });

  it('should refuse the attack transactions with POLICY_DENIED before the key is touched, auditing intent and decision', async () => {
    const sol = await wallet('SOL');
    const eth = await wallet('ETH');
    const attacker = Keypair.generate().publicKey;
    const tokenAccount = getAssociatedTokenAddressSync(Keypair.generate().publicKey, new PublicKey(sol.address));
    const setAuthority = solanaTx(sol.address, createSetAuthorityInstruction(tokenAccount, new PublicKey(sol.address), AuthorityType.AccountOwner, attacker));
    const durable = new Transaction({
      feePayer: new PublicKey(sol.address),
      nonceInfo: {
        nonce: BLOCKHASH,
        nonceInstruction: SystemProgram.nonceAdvance({ noncePubkey: Keypair.generate().publicKey, authorizedPubkey: new PublicKey(sol.address) }),
      },
    })
      .add(SystemProgram.transfer({ fromPubkey: new PublicKey(sol.address), toPubkey: attacker, lamports: 1 }))
      .serialize({ requireAllSignatures: false, verifySignatures: false })
      .toString('base64');
    const token = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
    const approve = serializeTransaction({
      type: 'eip1559',
      chainId: 31337,
      nonce: 0,
      to: token,
      gas: 60_000n,
      maxFeePerGas: parseGwei('20'),
      maxPriorityFeePerGas: parseGwei('1'),
      data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: ['0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC', maxUint256] }),
    });
    const legacyNoChainId = serializeTransaction({ type: 'legacy', nonce: 0, gas: 21_000n, gasPrice: parseGwei('20'), to: token, value: 1n });

    const signsBefore = kmsSignatures;
    const cases = [
      { w: sol, tx: setAuthority, rule: 'unknownAction' },
      { w: sol, tx: durable, rule: 'unknownAction' },
      { w: eth, tx: approve, rule: 'unknownAction' },
      { w: eth, tx: legacyNoChainId, rule: 'unsignable' },
    ];
    for (const c of cases) {
      const e = await refusal(client.request('wallet.transaction.sign', { userId: c.w.userId, walletId: c.w.walletId, transaction: c.tx }));
      assert.equal(e.code, ErrorCode.POLICY_DENIED, e.message);
      assert.equal(e.details?.rule, c.rule, e.message);
    }
    assert.equal(kmsSignatures, signsBefore, 'the KMS signed nothing');

    const refusedApprove = await auditOf(eth.walletId, 'failed', (e) => e.after?.intent?.actions[0]?.kind === 'contract-call');
    assert.equal(refusedApprove.error?.code, ErrorCode.POLICY_DENIED);
    assert.deepEqual(refusedApprove.after?.intent?.actions, [
      { kind: 'contract-call', contract: token, selector: '0x095ea7b3', name: 'approve(address,uint256)', value: '0' },
    ]);
    assert.equal(refusedApprove.after?.decision?.allowed, false);
    assert.equal(refusedApprove.after?.decision?.denial?.rule, 'unknownAction');

    // Once ops allow that contract for this wallet, the same transaction is signed (and audited as allowed).
    await ops.request('wallet.policy.set', { scope: 'wallet', walletId: eth.walletId, rules: { allowPrograms: [token.toLowerCase()] } });
    const signed = await client.request('wallet.transaction.sign', { userId: eth.userId, walletId: eth.walletId, transaction: approve });
    assert.equal((await recoverTransactionAddress({ serializedTransaction: signed.signedTransaction as never })).toLowerCase(), eth.address.toLowerCase());
    assert.equal(kmsSignatures, signsBefore + 1);
    const allowed = await auditOf(eth.walletId, 'success', (e) => e.action === 'wallet.sign');
    assert.equal(allowed.after?.decision?.allowed, true);
  });

  it('should never move more than the rolling 24 h cap of a wallet, under 50 concurrent transfers', async () => {
    const w = await wallet('SOL');
    solana.airdrop(w.address, 2_000_000_000n);
    const amount = 1_000_000n;
    // A cap counts what can leave the wallet, fees included: exactly ten transfers fit.
    const cap = 10n * (amount + SIGNATURE_FEE);
    await ops.request('wallet.policy.set', { scope: 'wallet', walletId: w.walletId, rules: { dailyPerWallet: { SOL: cap.toString() } } });
    // One recipient each: identical transfers would be one transaction (same bytes, same signature).
    const recipients = Array.from({ length: 50 }, newAddress);
    const signsBefore = kmsSignatures;
    const outcomes = await Promise.all(
      recipients.map((recipient) =>
        client
          .request('wallet.transaction.transferSol', { userId: w.userId, walletId: w.walletId, recipient, amount: amount.toString() }, { timeoutMs: 45_000 })
          .then(
            (r) => r.status,
            (e: unknown) => (isFleetError(e) ? `${e.code}:${String(e.details?.rule)}` : String(e)),
          ),
      ),
    );
    const count = (o: string) => outcomes.filter((x) => x === o).length;
    assert.deepEqual({ confirmed: count('confirmed'), denied: count('POLICY_DENIED:dailyPerWallet') }, { confirmed: 10, denied: 40 }, outcomes.join(','));
    assert.equal(kmsSignatures - signsBefore, 10);
    const received = await Promise.all(recipients.map(lamportsOf));
    assert.equal(
      received.reduce((a, b) => a + b, 0n),
      10n * amount,
    );
    assert.equal(await lamportsOf(w.address), 2_000_000_000n - 10n * (amount + SIGNATURE_FEE));
  });

  it("should count a user's wallets together against the user's cap, and give back what a failed signing reserved", async () => {
    const a = await wallet('SOL');
    const b = await wallet('SOL', a.userId);
    const spend = 1000n + SIGNATURE_FEE;
    await ops.request('wallet.policy.set', { scope: 'user', userId: a.userId, rules: { dailyPerUser: { SOL: (2n * spend).toString() } } });
    const transfer = (payer: string, from: string) =>
      solanaTx(payer, SystemProgram.transfer({ fromPubkey: new PublicKey(from), toPubkey: new PublicKey(newAddress()), lamports: 1000 }));
    const sign = (w: { userId: string; walletId: string }, tx: string) =>
      client.request('wallet.transaction.sign', { userId: w.userId, walletId: w.walletId, transaction: tx });

    // Not a transaction wallet a can sign (another fee payer): refused after the policy reserved its spend, which comes back.
    const stranger = newAddress();
    assert.equal((await refusal(sign(a, transfer(stranger, stranger)))).code, ErrorCode.VALIDATION_FAILED);
    await sign(a, transfer(a.address, a.address));
    await sign(b, transfer(b.address, b.address));
    const denied = await refusal(sign(a, transfer(a.address, a.address)));
    assert.equal(denied.code, ErrorCode.POLICY_DENIED);
    assert.deepEqual(
      { rule: denied.details?.rule, scope: denied.details?.scope, used: denied.details?.used, limit: denied.details?.limit },
      { rule: 'dailyPerUser', scope: 'user', used: (2n * spend).toString(), limit: (2n * spend).toString() },
    );
  });

  it('should send only to the allow-list of a user and never to the fleet deny-list, and cap one transaction', async () => {
    const w = await wallet('SOL');
    solana.airdrop(w.address, 1_000_000_000n);
    const bob = newAddress();
    const carol = newAddress();
    const mallory = newAddress();
    await ops.request('wallet.policy.set', { scope: 'user', userId: w.userId, rules: { allowDestinations: [bob, mallory] } });
    await ops.request('wallet.policy.set', { scope: 'fleet', rules: { denyDestinations: [mallory] } });
    await ops.request('wallet.policy.set', { scope: 'wallet', walletId: w.walletId, rules: { maxPerTransaction: { SOL: '10005000' } } });
    const send = (recipient: string, amount = '2000000') =>
      client.request('wallet.transaction.transferSol', { userId: w.userId, walletId: w.walletId, recipient, amount }, { timeoutMs: 30_000 });
    const signsBefore = kmsSignatures;
    const toCarol = await refusal(send(carol));
    assert.deepEqual([toCarol.code, toCarol.details?.rule, toCarol.details?.scope], [ErrorCode.POLICY_DENIED, 'allowDestinations', 'user']);
    const toMallory = await refusal(send(mallory));
    assert.deepEqual([toMallory.code, toMallory.details?.rule, toMallory.details?.scope], [ErrorCode.POLICY_DENIED, 'denyDestinations', 'fleet']);
    const tooMuch = await refusal(send(bob, '10000001'));
    assert.deepEqual([tooMuch.code, tooMuch.details?.rule, tooMuch.details?.amount], [ErrorCode.POLICY_DENIED, 'maxPerTransaction', '10005001']);
    assert.equal(kmsSignatures, signsBefore, 'nothing refused was signed');
    assert.equal((await send(bob, '10000000')).status, 'confirmed');
    assert.equal(await lamportsOf(bob), 10_000_000n);
    assert.equal(await lamportsOf(carol), 0n);
    const refusedAudit = await auditOf(w.walletId, 'failed', (e) => e.error?.code === ErrorCode.POLICY_DENIED);
    assert.equal(refusedAudit.action, 'wallet.transferSol');
    assert.equal(refusedAudit.after?.decision?.allowed, false);
    await ops.request('wallet.policy.set', { scope: 'fleet', rules: {} });
  });

  it('should sign every random transfer within policy, and the signed transaction decodes to the intent it was allowed as', async () => {
    const w = await wallet('ETH');
    const token = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
    // An address book in lower case: EVM addresses match whatever their checksum casing.
    const book = ['0x000000000000000000000000000000000000dead', '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc', '0x90f79bf6eb2c4f870365e785982e1f101e93b906'];
    const cap = 10n ** 20n;
    await ops.request('wallet.policy.set', {
      scope: 'wallet',
      walletId: w.walletId,
      rules: { allowDestinations: book, maxPerTransaction: { ETH: cap.toString(), [`ETH:${token}`]: cap.toString() } },
    });
    const transfer = fc.record({
      erc20: fc.boolean(),
      to: fc.constantFrom(...book),
      amount: fc.bigInt({ min: 0n, max: 10n ** 19n }),
      nonce: fc.nat({ max: 1_000_000 }),
      legacy: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(transfer, async (t) => {
        const call = t.erc20
          ? { to: token as Hex, value: 0n, data: encodeFunctionData({ abi: erc20Abi, functionName: 'transfer', args: [t.to as Hex, t.amount] }) }
          : { to: t.to as Hex, value: t.amount };
        const unsigned: TransactionSerializable = t.legacy
          ? { type: 'legacy', chainId: 31337, nonce: t.nonce, gas: 60_000n, gasPrice: parseGwei('2'), ...call }
          : { type: 'eip1559', chainId: 31337, nonce: t.nonce, gas: 60_000n, maxFeePerGas: parseGwei('2'), maxPriorityFeePerGas: 1n, ...call };
        const signed = await client.request('wallet.transaction.sign', { userId: w.userId, walletId: w.walletId, transaction: serializeTransaction(unsigned) });
        const { r: _r, s: _s, v: _v, yParity: _y, ...body } = parseTransaction(signed.signedTransaction as Hex);
        const intent = decodeEvmTransaction(serializeTransaction(body as TransactionSerializable), { from: w.address, chainId: 31337 });
        const from = getAddress(w.address);
        assert.deepEqual(
          intent.actions,
          t.erc20
            ? [{ kind: 'token-transfer', program: token, token, from, to: getAddress(t.to), amount: t.amount.toString() }]
            : [{ kind: 'native-transfer', from, to: getAddress(t.to), amount: t.amount.toString() }],
        );
        const audited = await auditOf(w.walletId, 'success', (e) => e.after?.hash === signed.hash);
        assert.deepEqual(audited.after?.intent, intent);
      }),
      { numRuns: 25 },
    );
  });

  it('should apply a policy changed behind its back (another replica, an operator in SQL) to the very next signing, tighter or looser', async () => {
    // The service keeps the rules it read in memory; nothing tells it of these changes but the
    // database itself (as for a change made through another replica).
    const db = new pg.Pool({ connectionString: schema.migrationUrl, options: `-c search_path=${schema.schema}`, max: 1 });
    try {
      const w = await wallet('SOL');
      const mallory = newAddress();
      const sign = () =>
        client.request('wallet.transaction.sign', {
          userId: w.userId,
          walletId: w.walletId,
          transaction: solanaTx(w.address, SystemProgram.transfer({ fromPubkey: new PublicKey(w.address), toPubkey: new PublicKey(mallory), lamports: 1 })),
        });
      await sign();
      await db.query(`INSERT INTO policies (scope, scope_id, rules, version) VALUES ('wallet', $1, $2, 1)`, [
        w.walletId,
        JSON.stringify({ denyDestinations: [mallory] }),
      ]);
      const signsBefore = kmsSignatures;
      const denied = await refusal(sign());
      assert.deepEqual([denied.code, denied.details?.rule, denied.details?.scope], [ErrorCode.POLICY_DENIED, 'denyDestinations', 'wallet']);
      assert.equal(kmsSignatures, signsBefore, 'the refused signing never reached the key');
      await db.query(`UPDATE policies SET rules = '{}', version = version + 1 WHERE scope = 'wallet' AND scope_id = $1`, [w.walletId]);
      await sign();
      assert.equal(kmsSignatures, signsBefore + 1, 'the loosened policy signed at once');
    } finally {
      await db.end();
    }
  });

  it('should keep policies per scope with a version, auditing every change with before and after', async () => {
    const userId = `u-${randomUUID()}`;
    assert.deepEqual(await ops.request('wallet.policy.get', { scope: 'user', userId }), {
      scope: 'user',
      id: userId,
      rules: {},
      version: 0,
      updatedAt: null,
    });
    const first = await ops.request('wallet.policy.set', { scope: 'user', userId, rules: { maxPerTransaction: { SOL: '5' } } });
    const second = await ops.request('wallet.policy.set', { scope: 'user', userId, rules: { maxPerTransaction: { SOL: '7' }, denyDestinations: ['x'] } });
    assert.deepEqual([first.version, second.version], [1, 2]);
    assert.deepEqual(await ops.request('wallet.policy.get', { scope: 'user', userId }), second);
    const change = await waitFor(
      () => audit.find((e) => e.action === 'wallet.policy.set' && e.resource.id === `user:${userId}` && (e.after as { version?: number })?.version === 2),
      { timeoutMs: 5000, what: 'the audit event of the second change' },
    );
    assert.deepEqual(change.before, { rules: { maxPerTransaction: { SOL: '5' } }, version: 1 });
    assert.deepEqual(change.after, { rules: { maxPerTransaction: { SOL: '7' }, denyDestinations: ['x'] }, version: 2 });
    const missing = await refusal(ops.request('wallet.policy.set', { scope: 'wallet', walletId: randomUUID(), rules: {} }));
    assert.equal(missing.code, ErrorCode.WALLET_NOT_FOUND);
    const bad = await refusal(ops.request('wallet.policy.set', { scope: 'user', userId, rules: { maxPerTransaction: { DOGE: '1' } } } as never));
    assert.equal(bad.code, ErrorCode.VALIDATION_FAILED);
  });
});
