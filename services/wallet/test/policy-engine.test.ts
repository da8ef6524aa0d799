import assert from 'node:assert/strict';
import type { Intent } from '@wallet-fleet/chains';
import { DEFAULT_APPROVERS, type ScopedRules, evaluate } from '../src/policy/engine.js';

const intent = (over: Partial<Intent> = {}): Intent => ({
  chain: 'ETH',
  from: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
  actions: [{ kind: 'native-transfer', from: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8', to: '0x000000000000000000000000000000000000dEaD', amount: '100' }],
  fee: { max: '21', detail: {} },
  expiry: { kind: 'none', reason: 'nonce' },
  ...over,
});
const fleet = (rules: ScopedRules['rules']): ScopedRules => ({ scope: 'fleet', id: null, rules });
const wallet = (rules: ScopedRules['rules']): ScopedRules => ({ scope: 'wallet', id: 'w-1', rules });
const ruleOf = (e: ReturnType<typeof evaluate>) => (e.allowed ? 'allowed' : `${e.denial.rule}@${e.denial.scope ?? '-'}`);

describe('signing policy rules (pure)', () => {
  it('should allow a plain transfer with no policy, counting its fee with the amount', () => {
    const e = evaluate(intent(), []);
    assert.equal(e.allowed, true);
    assert.deepEqual([...e.spend], [['ETH', 121n]]);
  });

  it('should refuse an unsignable transaction whatever the policy allows', () => {
    assert.equal(
      ruleOf(evaluate(intent({ unsignable: 'no chain id' }), [fleet({ allowPrograms: ['0x000000000000000000000000000000000000dead'] })])),
      'unsignable@-',
    );
  });

  it('should refuse contract calls and unknown actions unless some scope allows their program (EVM addresses in any case)', () => {
    const call = intent({ actions: [{ kind: 'contract-call', contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3', selector: '0x095ea7b3', value: '0' }] });
    assert.equal(ruleOf(evaluate(call, [])), 'unknownAction@-');
    assert.equal(ruleOf(evaluate(call, [fleet({}), wallet({ allowPrograms: ['0x5fbdb2315678afecb367f032d93f642f64180aa3'] })])), 'allowed');
    const nameless = intent({ actions: [{ kind: 'unknown', reason: 'contract creation' }] });
    assert.equal(ruleOf(evaluate(nameless, [fleet({ allowPrograms: ['anything'] })])), 'unknownAction@-');
  });

  it('should apply the deny-list and allow-list of every scope, naming the scope that refused', () => {
    const dead = '0x000000000000000000000000000000000000dead';
    assert.equal(ruleOf(evaluate(intent(), [fleet({ denyDestinations: [dead] })])), 'denyDestinations@fleet');
    assert.equal(ruleOf(evaluate(intent(), [fleet({ allowDestinations: [dead] }), wallet({ allowDestinations: ['0x01'] })])), 'allowDestinations@wallet');
    assert.equal(ruleOf(evaluate(intent(), [fleet({ allowDestinations: [dead.toUpperCase().replace('0X', '0x')] })])), 'allowed');
  });

  it('should hold every scope to its per-transaction cap, fees included, and hand the rolling caps on', () => {
    assert.equal(ruleOf(evaluate(intent(), [fleet({ maxPerTransaction: { ETH: '121' } })])), 'allowed');
    assert.equal(
      ruleOf(evaluate(intent(), [fleet({ maxPerTransaction: { ETH: '1000' } }), wallet({ maxPerTransaction: { ETH: '120' } })])),
      'maxPerTransaction@wallet',
    );
    const e = evaluate(intent(), [fleet({ dailyPerUser: { ETH: '500', SOL: '1' } }), wallet({ dailyPerWallet: { ETH: '300' } })]);
    assert.ok(e.allowed);
    assert.deepEqual(
      e.dailyCaps.map((c) => [c.rule, c.scope, c.asset, c.limit]),
      [
        ['dailyPerUser', 'fleet', 'ETH', 500n],
        ['dailyPerWallet', 'wallet', 'ETH', 300n],
      ],
    );
  });

  it('should ask for approval above a threshold, fees included, the most approvers any scope names, and never instead of a denial', () => {
    const approval = (e: ReturnType<typeof evaluate>) => (e.allowed ? e.approval && [e.approval.scope, e.approval.approvers] : e.denial.rule);
    assert.equal(approval(evaluate(intent(), [fleet({ approvalAbove: { ETH: '121' } })])), undefined);
    assert.deepEqual(approval(evaluate(intent(), [fleet({ approvalAbove: { ETH: '120' } })])), ['fleet', DEFAULT_APPROVERS]);
    assert.deepEqual(
      approval(evaluate(intent(), [fleet({ approvalAbove: { ETH: '100' }, approvers: 3 }), wallet({ approvalAbove: { ETH: '10' }, approvers: 2 })])),
      ['fleet', 3],
    );
    assert.equal(approval(evaluate(intent(), [fleet({ approvalAbove: { ETH: '1' }, maxPerTransaction: { ETH: '120' } })])), 'maxPerTransaction');
    assert.equal(approval(evaluate(intent(), [fleet({ approvalAbove: { SOL: '1' } })])), undefined, 'another asset');
  });

  it('should name ERC-20 assets by contract in any case, and SPL transfers without a mint as unknown-mint', () => {
    const token = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
    const erc20 = intent({ actions: [{ kind: 'token-transfer', program: token, token, from: 'a', to: 'b', amount: '7' }] });
    assert.equal(ruleOf(evaluate(erc20, [fleet({ maxPerTransaction: { [`ETH:${token}`]: '6' } })])), 'maxPerTransaction@fleet');
    const spl = intent({ chain: 'SOL', actions: [{ kind: 'token-transfer', program: 'p', token: null, from: 'a', to: 'b', amount: '7' }] });
    assert.deepEqual([...evaluate(spl, []).spend.keys()], ['SOL:unknown-mint', 'SOL']);
  });
});
