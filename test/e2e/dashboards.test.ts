// The Grafana dashboards and the alert rules query only metrics that exist: the fleet is started from
// the development manifests and each service's /metrics read, then every metric name in a dashboard
// panel or a rule is looked up there (a service's own dashboard: in that service's page).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type FleetService, fleetNames, type ManifestFleet, repoRoot, startFleetFromManifests, yaml } from './support/manifests.js';
import { exportedNames, metricNames, PROMETHEUS_OWN, RABBITMQ_OWN } from './support/promql.js';

const dashboardsDir = join(repoRoot, 'infra/grafana/dashboards');

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource: { uid: string };
  targets: Array<{ refId: string; expr: string }>;
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
}

const dashboards = () =>
  readdirSync(dashboardsDir)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8')) as Dashboard }));

describe('PromQL metric name extraction', () => {
  it('should find the metric names of an expression and nothing else', () => {
    assert.deepEqual(
      metricNames(
        'histogram_quantile(0.99, sum by (queue, le) (rate(messaging_handler_duration_seconds_bucket{service="audit",queue=~"a\\\\..*"}[$__rate_interval])))',
      ),
      ['messaging_handler_duration_seconds_bucket'],
    );
    assert.deepEqual(metricNames('time() - max(reconciliation_last_completed_timestamp_seconds) > 1800'), ['reconciliation_last_completed_timestamp_seconds']);
    assert.deepEqual(metricNames('up{service=~"a|b"} == 0 or on (instance) absent(x_total offset 5m) and bool 1e3'), ['up', 'x_total']);
  });
});

describe('dashboards (infra/grafana/dashboards)', () => {
  it('should have an overview and one dashboard per service, each with unique uids, laid-out panels and PromQL targets', () => {
    const all = dashboards();
    assert.deepEqual(all.map((d) => d.file).sort(), [...fleetNames.map((n) => `${n}.json`), 'overview.json'].sort());
    assert.equal(new Set(all.map((d) => d.dashboard.uid)).size, all.length, 'unique uids');
    for (const { file, dashboard } of all) {
      assert.ok(dashboard.panels.length >= 4, `${file} has panels`);
      assert.equal(new Set(dashboard.panels.map((p) => p.id)).size, dashboard.panels.length, `${file}: unique panel ids`);
      for (const p of dashboard.panels) {
        assert.ok(p.gridPos.x + p.gridPos.w <= 24, `${file}: ${p.title} fits the grid`);
        assert.ok(p.targets.length > 0 && p.targets.every((t) => t.expr.trim()), `${file}: ${p.title} queries something`);
      }
    }
  });
});

describe('metrics that dashboards and alert rules query', function () {
  this.timeout(120_000);
  let fleet: ManifestFleet;
  const exported = {} as Record<FleetService, Set<string>>;
  before(async () => {
    fleet = await startFleetFromManifests();
    for (const name of fleetNames) {
      const res = await fetch(fleet.services[name].url('/metrics'));
      assert.equal(res.status, 200);
      exported[name] = exportedNames(await res.text());
    }
  });
  after(async () => fleet?.stop());

  const external = (name: string) => PROMETHEUS_OWN.has(name) || RABBITMQ_OWN.has(name);
  const missing = (names: string[], offered: Set<string>) => names.filter((n) => !external(n) && !offered.has(n));

  it("should query in each service's dashboard only metrics that service exports", () => {
    for (const name of fleetNames) {
      const dashboard = dashboards().find((d) => d.file === `${name}.json`)!.dashboard;
      for (const panel of dashboard.panels) {
        for (const t of panel.targets) assert.deepEqual(missing(metricNames(t.expr), exported[name]), [], `${name}.json "${panel.title}": ${t.expr}`);
      }
    }
  });

  it('should query in the overview and in every alert rule only metrics some service exports', () => {
    const union = new Set(fleetNames.flatMap((n) => [...exported[n]]));
    const overview = dashboards().find((d) => d.file === 'overview.json')!.dashboard;
    const exprs = [
      ...overview.panels.flatMap((p) => p.targets.map((t) => [`overview.json "${p.title}"`, t.expr] as const)),
      ...(
        yaml.load(readFileSync(join(repoRoot, 'infra/prometheus/rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> }
      ).groups.flatMap((g) => g.rules.map((r) => [`alert ${r.alert}`, r.expr] as const)),
    ];
    for (const [where, expr] of exprs) {
      assert.ok(metricNames(expr).length > 0, `${where} reads a metric`);
      assert.deepEqual(missing(metricNames(expr), union), [], `${where}: ${expr}`);
    }
  });

  it('should label every series of every service with its service name (the dashboards filter on it)', async () => {
    for (const name of fleetNames) {
      const page = await (await fetch(fleet.services[name].url('/metrics'))).text();
      const samples = page.split('\n').filter((l) => l && !l.startsWith('#'));
      assert.ok(samples.length > 0);
      for (const line of samples) assert.ok(line.includes(`service="${name}"`), `${name}: ${line}`);
    }
  });
});
