// The deployment files cannot run here (no Docker engine, no cluster): check what can be checked
// without one. They parse, and they agree with each other and with the services that exist (names,
// commands, ports, probes, backing-service hostnames). And the container health check really works.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deploymentOf, render } from './support/manifests.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (p: string) => readFileSync(join(repoRoot, p), 'utf8');

// js-yaml comes with mocha (no dependency of our own just to read YAML in a test); it supports the
// `<<` merge keys the compose file uses.
const requireFromMocha = createRequire(createRequire(import.meta.url).resolve('mocha/package.json'));
const yaml = requireFromMocha('js-yaml') as { load(s: string): unknown; loadAll(s: string): unknown[] };

/** The product's services and their HTTP ports (README.md and docs/operations.md say the same). */
const PORTS: Record<string, number> = { audit: 8081, wallet: 8082, provisioning: 8083, webhooks: 8084, reconciliation: 8085 };

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  volumes?: string[];
  profiles?: string[];
}

describe('deployment files', () => {
  const compose = yaml.load(read('docker-compose.yml')) as { services: Record<string, ComposeService> };
  const services = compose.services;
  const existing = readdirSync(join(repoRoot, 'services')).filter((n) => existsSync(join(repoRoot, 'services', n, 'package.json')));

  it('should run the backing services from the agreed images, each with a health check', () => {
    assert.equal(services.rabbitmq?.image, 'rabbitmq:3.13-management');
    assert.equal(services.postgres?.image, 'postgres:15');
    assert.equal(services.redis?.image, 'redis:7');
    for (const name of ['rabbitmq', 'postgres', 'redis']) assert.ok(services[name]?.healthcheck?.test?.length, `${name} health check`);
    for (const mount of services.rabbitmq?.volumes ?? []) {
      const host = mount.split(':')[0]!;
      if (host.startsWith('./')) assert.ok(existsSync(join(repoRoot, host)), `mounted file ${host} exists`);
    }
  });

  it('should have a compose service for every product service that exists under services/', () => {
    for (const name of existing.filter((n) => n in PORTS)) assert.ok(services[name], `docker-compose.yml has no service ${name}`);
  });

  it('should start each fleet service from the one Dockerfile with its own command, port, schema and /ready health check', () => {
    assert.ok(existsSync(join(repoRoot, 'Dockerfile')));
    const fleet = Object.entries(services).filter(([name, s]) => !['rabbitmq', 'postgres', 'redis'].includes(name) && !s.profiles?.includes('monitoring'));
    assert.ok(fleet.length >= 1);
    for (const [name, s] of fleet) {
      assert.equal(s.build, '.', `${name} builds the Dockerfile`);
      assert.deepEqual(s.command, ['node', `services/${name}/dist/main.js`], `${name} command`);
      const port = PORTS[name];
      assert.ok(port, `${name} has an agreed port`);
      assert.equal(s.environment?.HTTP_PORT, String(port), `${name} HTTP_PORT`);
      assert.ok(s.ports?.includes(`${port}:${port}`), `${name} publishes ${port}`);
      assert.equal(s.environment?.DATABASE_SCHEMA, name, `${name} schema`);
      assert.deepEqual(s.healthcheck?.test, ['CMD', 'node', 'scripts/healthcheck.mjs', '/ready'], `${name} health check`);
      for (const dep of ['rabbitmq', 'postgres', 'redis']) assert.equal(s.depends_on?.[dep]?.condition, 'service_healthy', `${name} waits for ${dep}`);
      // The URLs must name the compose services; 127.0.0.1 would be the container itself.
      assert.equal(new URL(s.environment!.AMQP_URL!).hostname, 'rabbitmq');
      assert.notEqual(new URL(s.environment!.AMQP_URL!).username, 'guest', 'RabbitMQ refuses guest from other hosts');
      assert.equal(new URL(s.environment!.DATABASE_URL!).hostname, 'postgres');
      assert.equal(new URL(s.environment!.REDIS_URL!).hostname, 'redis');
    }
  });

  it('should give Redis a password and every fleet service a REDIS_URL carrying it, from REDIS_PASSWORD', () => {
    const redis = services.redis!;
    assert.match(redis.command!.join(' '), /--requirepass "\$\$REDIS_PASSWORD"/);
    assert.match(redis.environment!.REDIS_PASSWORD!, /^\$\{REDIS_PASSWORD:-[^}]+\}$/);
    assert.match(redis.healthcheck!.test.join(' '), /REDISCLI_AUTH="\$\$REDIS_PASSWORD" redis-cli ping/, 'the health check logs in too');
    for (const name of existing.filter((n) => n in PORTS)) {
      assert.match(services[name]!.environment!.REDIS_URL!, /^redis:\/\/:\$\{REDIS_PASSWORD:-redis\}@redis:6379$/, `${name} REDIS_URL`);
    }
  });

  it('should leave development mode and the development runtimes to the override file, which puts every service in development mode', () => {
    const dev = yaml.load(read('infra/compose/dev-runtimes.yml')) as { services: Record<string, ComposeService> };
    for (const name of existing.filter((n) => n in PORTS)) {
      const env = services[name]!.environment ?? {};
      assert.equal(env.FLEET_DEV_MODE, undefined, `${name}: no development mode in docker-compose.yml`);
      assert.equal(env.NODE_ENV, undefined, `${name}: the image's NODE_ENV=production`);
      assert.deepEqual(
        [dev.services[name]?.environment?.NODE_ENV, dev.services[name]?.environment?.FLEET_DEV_MODE],
        ['development', 'true'],
        `${name} in development mode in the override`,
      );
    }
    assert.match(services.wallet!.environment!.KMS_ENDPOINT!, /^\$\{KMS_ENDPOINT:-\}$/, 'production: Cloud KMS from the environment, no emulator default');
    for (const runtime of ['kms-emulator', 'solana', 'anvil']) assert.equal(services[runtime], undefined, `${runtime} only in the override`);
  });

  describe('the production image (Dockerfile)', () => {
    const dockerfile = read('Dockerfile').replace(/\\\n/g, ' ');
    // The stages by name, each with its instructions (comments dropped).
    const stages = new Map<string, string[]>();
    let current: string[] = [];
    for (const line of dockerfile.split('\n').map((l) => l.trim())) {
      if (line === '' || line.startsWith('#')) continue;
      const from = /^FROM \S+ AS (\S+)$/i.exec(line);
      if (from) stages.set(from[1]!, (current = [line]));
      else current.push(line);
    }
    const last = [...stages.keys()].at(-1)!;
    const runtime = stages.get(last)!;
    const copies = runtime.filter((l) => l.startsWith('COPY'));
    const installStage = /--from=(\S+)/.exec(copies[0] ?? '')?.[1] ?? '';

    it('should build the production image as the default (last) stage, with NODE_ENV=production', () => {
      assert.equal(last, 'runtime');
      assert.ok(runtime.includes('ENV NODE_ENV=production'));
      assert.deepEqual(copies, [`COPY --from=${installStage} --chown=node:node /app /app`], 'one copy, from the production install');
    });

    it('should install production dependencies of the services alone, and drop every development-only workspace folder', () => {
      const install = stages.get(installStage)!.join('\n');
      assert.match(install, /pnpm install --offline --frozen-lockfile --prod --filter-prod "\{\.\/services\/\*\}\.\.\."/);
      for (const folder of ['packages/dev-runtimes', 'packages/kms-emulator', 'packages/testing', 'test']) {
        assert.match(install, new RegExp(`rm -rf [^\n]*${folder.replace('/', '\\/')}( |$)`), `${folder} removed`);
      }
      // --filter-prod leaves out devDependencies: no service may need these at run time (the production-surface test checks the lockfile).
      for (const service of Object.keys(PORTS)) {
        const pkg = JSON.parse(read(`services/${service}/package.json`)) as { dependencies?: Record<string, string> };
        for (const dep of ['@wallet-fleet/dev-runtimes', '@wallet-fleet/kms-emulator', '@wallet-fleet/testing'])
          assert.ok(!(dep in (pkg.dependencies ?? {})), `${service} needs ${dep}`);
      }
    });

    it('should run one service by default, chosen by SERVICE, never the whole-fleet runner', () => {
      const cmd = runtime.find((l) => l.startsWith('CMD'))!;
      assert.doesNotMatch(cmd, /fleet\.(mjs|sh)/);
    });

    it('should start the service SERVICE names with the default command, and refuse to guess without one', async () => {
      const argv = JSON.parse(runtime.find((l) => l.startsWith('CMD'))!.slice('CMD'.length)) as string[];
      const run = (env: Record<string, string>) =>
        new Promise<{ code: number | null; stderr: string }>((done) => {
          const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('close', (code) => done({ code, stderr }));
        });
      // A configuration the service refuses at once: the line names the service that ran.
      const audit = await run({ SERVICE: 'audit', NODE_ENV: 'production', FLEET_DEV_MODE: 'true', KMS_ENDPOINT: 'cloudkms.googleapis.com' });
      assert.deepEqual(
        [audit.code, audit.stderr],
        [78, 'audit: invalid configuration: FLEET_DEV_MODE: development mode is refused with NODE_ENV=production\n'],
      );
      for (const SERVICE of ['', 'fleet', '../scripts/fleet']) {
        const none = await run({ SERVICE });
        assert.equal(none.code, 64, `SERVICE=${SERVICE}`);
        assert.match(none.stderr, /set SERVICE to audit, wallet, provisioning, webhooks or reconciliation/);
      }
    });

    it('should keep the development runtimes in a development target of their own, which the override file builds', () => {
      assert.ok(stages.has('development'));
      const dev = yaml.load(read('infra/compose/dev-runtimes.yml')) as { services: Record<string, ComposeService> };
      for (const runtime of ['kms-emulator', 'solana', 'anvil']) assert.deepEqual(dev.services[runtime]!.build, { context: '.', target: 'development' });
    });
  });

  it('should give the Kubernetes Deployments the same command and port as compose (infra/k8s; test/e2e/k8s.test.ts checks the rest)', () => {
    const objects = render('production');
    for (const name of existing.filter((n) => n in PORTS)) {
      const container = deploymentOf(objects, name).spec.template.spec.containers[0];
      assert.deepEqual(container.command, services[name]!.command, `${name} command`);
      assert.equal(container.ports[0].containerPort, PORTS[name], `${name} port`);
    }
  });

  it('should run Prometheus and Grafana only in the monitoring profile, with the rules, scrape targets and dashboards of infra/ mounted', () => {
    const { prometheus, grafana } = services;
    assert.deepEqual(prometheus?.profiles, ['monitoring']);
    assert.deepEqual(grafana?.profiles, ['monitoring']);
    const mounts = (s: ComposeService) => Object.fromEntries((s.volumes ?? []).map((v) => v.split(':')).map(([host, target]) => [target!, host!]));
    assert.equal(mounts(prometheus!)['/etc/prometheus'], './infra/prometheus');
    assert.ok(prometheus!.command?.includes('--config.file=/etc/prometheus/prometheus.yml'));
    const config = yaml.load(read('infra/prometheus/prometheus.yml')) as any;
    assert.deepEqual(config.rule_files, ['rules.yml']);
    assert.ok(existsSync(join(repoRoot, 'infra/prometheus/rules.yml')));
    // Every fleet service that compose runs is scraped at its compose name and port.
    const fleetJob = config.scrape_configs.find((j: any) => j.job_name === 'wallet-fleet');
    const targets = fleetJob.static_configs.map((c: any) => [c.targets[0], c.labels.service]);
    assert.deepEqual(
      targets,
      Object.entries(PORTS).map(([name, port]) => [`${name}:${port}`, name]),
    );
    assert.equal(config.scrape_configs.find((j: any) => j.job_name === 'rabbitmq').metrics_path, '/metrics/per-object');
    assert.match(read('infra/rabbitmq/enabled_plugins'), /rabbitmq_prometheus/);
    assert.equal(mounts(grafana!)['/etc/grafana/provisioning'], './infra/grafana/provisioning');
    assert.equal(mounts(grafana!)['/var/lib/grafana/dashboards'], './infra/grafana/dashboards');
    const datasource = (yaml.load(read('infra/grafana/provisioning/datasources/prometheus.yml')) as any).datasources[0];
    assert.equal(new URL(datasource.url).host, 'prometheus:9090', 'Grafana reaches the compose service');
    const provider = (yaml.load(read('infra/grafana/provisioning/dashboards/wallet-fleet.yml')) as any).providers[0];
    assert.equal(provider.options.path, '/var/lib/grafana/dashboards');
    for (const file of readdirSync(join(repoRoot, 'infra/grafana/dashboards'))) {
      for (const panel of JSON.parse(read(`infra/grafana/dashboards/${file}`)).panels)
        assert.equal(panel.datasource.uid, datasource.uid, `${file}: ${panel.title}`);
    }
  });

  describe('container health check (scripts/healthcheck.mjs)', () => {
    let server: Server;
    let status = 200;
    let seenPath = '';
    before(async () => {
      server = createServer((req, res) => {
        seenPath = req.url ?? '';
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: status === 200 }));
      });
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    });
    after(() => new Promise<void>((done) => server.close(() => done())));

    const check = (port: number | undefined, args: string[] = []) =>
      new Promise<number | null>((done) => {
        const env: Record<string, string | undefined> = { ...process.env, HTTP_PORT: port === undefined ? undefined : String(port) };
        if (port === undefined) delete env.HTTP_PORT;
        const child = spawn(process.execPath, [join(repoRoot, 'scripts/healthcheck.mjs'), ...args], { env, stdio: 'ignore' });
        child.on('close', done);
      });

    it('should report healthy when /ready answers 200', async () => {
      status = 200;
      assert.equal(await check((server.address() as AddressInfo).port), 0);
      assert.equal(seenPath, '/ready');
    });

    it('should report unhealthy when /ready answers 503', async () => {
      status = 503;
      assert.equal(await check((server.address() as AddressInfo).port), 1);
    });

    it('should probe another path when given one', async () => {
      status = 200;
      assert.equal(await check((server.address() as AddressInfo).port, ['/live']), 0);
      assert.equal(seenPath, '/live');
    });

    it('should report unhealthy when nothing listens or HTTP_PORT is missing', async () => {
      const closed = createServer();
      await new Promise<void>((done) => closed.listen(0, '127.0.0.1', done));
      const port = (closed.address() as AddressInfo).port;
      await new Promise<void>((done) => closed.close(() => done()));
      assert.equal(await check(port), 1);
      assert.equal(await check(undefined), 1);
    });
  });
});
