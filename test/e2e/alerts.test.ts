// The alert rules as Prometheus runs them: promtool checks them and runs their unit tests
// (infra/prometheus/rules.test.yml), every alert is tested firing and staying quiet, has a runbook
// entry in docs/operations.md, and the PrometheusRule for Kubernetes carries exactly the same rules.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { render, repoRoot, yaml } from './support/manifests.js';

const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rulesFile = () => yaml.load(read('infra/prometheus/rules.yml')) as { groups: Array<{ name: string; rules: Rule[] }> };
const alerts = () =>
  rulesFile()
    .groups.flatMap((g) => g.rules)
    .filter((r) => r.alert);

/** What must wake someone (the operations issue's list), each to at least one alert. */
const REQUIRED = [
  'LedgerDrift',
  'DepositsStuck',
  'ProvisioningChainsFailed',
  'DeadLetterQueueGrowing',
  'OutboxRowsLeftBehind',
  'KmsErrors',
  'CircuitBreakerOpen',
  'ReconciliationBehind',
  'AuditChainShrank',
  'ServiceDown',
  'ServiceNotReady',
];

/**
 * Runs promtool (Debian's `prometheus` package; scripts/setup.sh installs it where apt works).
 * @throws Error naming the package when promtool is missing: CI must not pass without running it.
 */
function promtool(...args: string[]) {
  const r = spawnSync('promtool', args, { cwd: join(repoRoot, 'infra/prometheus'), encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('promtool is not installed: apt-get install prometheus (scripts/setup.sh does this where apt works)');
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('alert rules (infra/prometheus)', () => {
  it('should pass promtool check rules and check config', () => {
    const rules = promtool('check', 'rules', 'rules.yml');
    assert.equal(rules.status, 0, rules.output);
    assert.match(rules.output, new RegExp(`SUCCESS: ${alerts().length} rules found`));
    const config = promtool('check', 'config', 'prometheus.yml');
    assert.equal(config.status, 0, config.output);
  });

  it('should pass every unit test of rules.test.yml (promtool test rules)', function () {
    this.timeout(60_000);
    const r = promtool('test', 'rules', 'rules.test.yml');
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  it('should fail promtool test rules when a rule no longer fires as its test expects (the tests can fail)', function () {
    this.timeout(60_000);
    // The same tests against rules whose drift threshold was raised: LedgerDrift's test must fail.
    const dir = mkdtempSync(join(tmpdir(), 'rules-mutant-'));
    try {
      writeFileSync(
        join(dir, 'rules.yml'),
        read('infra/prometheus/rules.yml').replace('max by (kind) (reconciliation_drift) > 0', 'max by (kind) (reconciliation_drift) > 5'),
      );
      writeFileSync(join(dir, 'rules.test.yml'), read('infra/prometheus/rules.test.yml'));
      const r = spawnSync('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: dir, encoding: 'utf8' });
      assert.notEqual(r.status, 0);
      assert.match(`${r.stdout}${r.stderr}`, /alertname: LedgerDrift/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should have an alert for each thing that must wake someone, each paging with a runbook entry in docs/operations.md', () => {
    const names = alerts().map((a) => a.alert!);
    for (const required of REQUIRED) assert.ok(names.includes(required), `alert ${required}`);
    const ops = read('docs/operations.md');
    for (const a of alerts()) {
      assert.equal(a.labels?.severity, 'page', `${a.alert} severity`);
      assert.ok(a.annotations?.summary, `${a.alert} summary`);
      assert.equal(a.annotations?.runbook, `docs/operations.md#${a.alert!.toLowerCase()}`, `${a.alert} runbook link`);
      // GitHub's anchor of a heading "#### LedgerDrift" is #ledgerdrift.
      assert.match(ops, new RegExp(`^#+ ${a.alert}$`, 'm'), `docs/operations.md has a heading for ${a.alert}`);
    }
  });

  it('should test every alert both firing and staying quiet', () => {
    const tests = (
      yaml.load(read('infra/prometheus/rules.test.yml')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> }
    ).tests;
    const cases = tests.flatMap((t) => t.alert_rule_test);
    for (const a of alerts()) {
      assert.ok(
        cases.some((c) => c.alertname === a.alert && c.exp_alerts.length > 0),
        `${a.alert}: a case where it fires`,
      );
      assert.ok(
        cases.some((c) => c.alertname === a.alert && c.exp_alerts.length === 0),
        `${a.alert}: a case where it stays quiet`,
      );
    }
  });

  it('should give the Prometheus operator (PrometheusRule in both overlays) exactly the rules of rules.yml', () => {
    for (const overlay of ['development', 'production'] as const) {
      const rule = render(overlay).find((o) => o.kind === 'PrometheusRule');
      assert.ok(rule, `${overlay} has a PrometheusRule`);
      assert.deepEqual(rule.spec.groups, rulesFile().groups, 'edit infra/prometheus/rules.yml, then copy its groups into infra/k8s/base/prometheus-rule.yaml');
    }
  });
});
