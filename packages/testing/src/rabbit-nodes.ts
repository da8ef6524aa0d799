import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * RabbitMQ nodes of our own, for tests that must hurt a broker (resource alarms, a node killed):
 * never the machine's node (rabbit@localhost, 5672), which every suite shares. Each node has its
 * own name, config file (the machine's `/etc/rabbitmq/rabbitmq.conf` pins its listener), AMQP port,
 * distribution port (AMQP + 20000) and data directory under /tmp (owned by `rabbitmq`: the server
 * drops to that user). No plugins: look at them with `ctl` (rabbitmqctl), not the management API.
 */
export interface RabbitNode {
  /** `name@localhost`. */
  node: string;
  port: number;
  /** AMQP URL of this node as guest (loopback_users is off on our nodes). */
  url: string;
  ctl(...args: string[]): Promise<string>;
  /** The Erlang VM's process id (from the node's pid file). */
  pid(): number;
  /** kill -9 of the node's VM: a crash, no goodbye to clients or peers. */
  kill(): void;
  /** `rabbitmqctl stop`, else SIGKILL; removes the data directory. */
  stop(): Promise<void>;
}

async function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

const dirOf = (name: string) => `/tmp/rq-${name}`;

/** A node's handle; `startNode` boots it, `nodeHandle` alone finds one started earlier (the script's `stop`). */
function nodeHandle(name: string, port: number): RabbitNode {
  const node = `${name}@localhost`;
  const dir = dirOf(name);
  const ctl = async (...args: string[]) => (await run('rabbitmqctl', ['-n', node, ...args], { timeout: 60_000 })).stdout;
  const pid = () => Number(readFileSafe(`${dir}/pid`));
  const kill = () => {
    const p = pid();
    if (p > 0) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  };
  const stop = async () => {
    const stopped = await ctl('stop').then(
      () => true,
      () => false,
    );
    // Not reachable through the CLI (killed, still booting, or hung): end it by its pid.
    if (!stopped) kill();
    rmSync(dir, { recursive: true, force: true });
  };
  return { node, port, url: `amqp://guest:guest@127.0.0.1:${port}/`, ctl, pid, kill, stop };
}

async function startNode(name: string, port: number): Promise<RabbitNode> {
  const handle = nodeHandle(name, port);
  const dir = dirOf(name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/plugins`, '[].');
  writeFileSync(`${dir}/rabbitmq.conf`, `listeners.tcp.local = 127.0.0.1:${port}\nloopback_users = none\n`);
  await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]);
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: handle.node,
    RABBITMQ_DIST_PORT: String(port + 20_000),
    RABBITMQ_CONFIG_FILE: `${dir}/rabbitmq.conf`,
    RABBITMQ_MNESIA_BASE: `${dir}/mnesia`,
    RABBITMQ_LOG_BASE: `${dir}/log`,
    RABBITMQ_ENABLED_PLUGINS_FILE: `${dir}/plugins`,
    RABBITMQ_PID_FILE: `${dir}/pid`,
  };
  try {
    await run('rabbitmq-server', ['-detached'], { env, timeout: 30_000 });
    // await_startup needs the node registered with epmd, which takes a moment after -detached.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const up = await handle.ctl('await_startup', '--timeout', '30').then(
        () => true,
        () => false,
      );
      if (up) break;
      if (Date.now() > deadline) throw new Error(`RabbitMQ node ${handle.node} did not start within 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}

/**
 * A single node for one suite: the first free AMQP port of 5701-5703 (distribution port + 20000),
 * named `<tag><pid>`. Starting takes about 10-25 s: keep such tests few.
 */
export async function startScratchNode(tag: string): Promise<RabbitNode> {
  for (const p of [5701, 5702, 5703]) {
    if ((await free(p)) && (await free(p + 20_000))) return startNode(`${tag}${process.pid}`, p);
  }
  throw new Error('no free port in 5701-5703 for a scratch RabbitMQ node');
}

/** Where the local cluster listens: AMQP 5711-5713, distribution 25711-25713. */
const CLUSTER_PORTS = [5711, 5712, 5713] as const;
const CLUSTER_NAMES = ['wfcluster1', 'wfcluster2', 'wfcluster3'] as const;

export interface LocalCluster {
  nodes: RabbitNode[];
  /**
   * `AMQP_URL` listing every node (comma-separated, as the services take it) as `user`, whose
   * local password is its name (the fleet's users, imported with the definitions); `first` rotates
   * the list so that node comes first.
   */
  urls(user: string, first?: number): string;
  /** Stops every node and removes their directories. */
  stop(): Promise<void>;
}

/**
 * `{ name, password_hash }` as RabbitMQ's `rabbit_password_hashing_sha256` stores it: base64 of
 * a 4-byte salt followed by sha256(salt ‖ password).
 */
function passwordHash(password: string): string {
  const salt = randomBytes(4);
  return Buffer.concat([salt, createHash('sha256').update(salt).update(password, 'utf8').digest()]).toString('base64');
}

/**
 * Imports broker definitions (infra/rabbitmq/definitions.json) into a node of ours with
 * `rabbitmqctl import_definitions`, each user given its local password (the role's name), as
 * `createFleetVhost` does on the machine's node; into the vhost `/`, the one the file names.
 */
export async function importDefinitions(node: RabbitNode, definitionsPath: string): Promise<void> {
  const defs = JSON.parse(readFileSync(definitionsPath, 'utf8')) as { users: Array<{ name: string; password_hash: string }> };
  for (const u of defs.users) u.password_hash = passwordHash(u.name);
  const file = `${dirOf(node.node.split('@')[0]!)}/definitions.json`;
  writeFileSync(file, JSON.stringify(defs));
  await run('chown', ['rabbitmq:rabbitmq', file]);
  await node.ctl('import_definitions', file);
}

function clusterHandle(nodes: RabbitNode[]): LocalCluster {
  return {
    nodes,
    urls: (user, first = 0) =>
      [...nodes.slice(first), ...nodes.slice(0, first)]
        .map((n) => `amqp://${encodeURIComponent(user)}:${encodeURIComponent(user)}@127.0.0.1:${n.port}/`)
        .join(','),
    stop: async () => {
      // The members last: a node stopped while its peers are gone waits for none of them.
      for (const n of [...nodes].reverse()) await n.stop();
    },
  };
}

/**
 * A local 3-node RabbitMQ cluster (`wfcluster1..3@localhost`, AMQP 5711-5713) holding the broker
 * definitions at `definitionsPath` (infra/rabbitmq/definitions.json: the fleet's users with their
 * local passwords, the vhost `/`, permissions, exchanges, policies). About 25 s. Refuses to start
 * while anything listens on its ports (e.g. a cluster started by `scripts/rabbit-cluster.ts` and not
 * stopped).
 */
export async function startLocalCluster(definitionsPath: string): Promise<LocalCluster> {
  for (const p of CLUSTER_PORTS) {
    if (!(await free(p)) || !(await free(p + 20_000))) {
      throw new Error(`port ${p} or ${p + 20_000} is taken: a local cluster is running already? (node scripts/rabbit-cluster.ts stop)`);
    }
  }
  const started = await Promise.allSettled(CLUSTER_NAMES.map((name, i) => startNode(name, CLUSTER_PORTS[i]!)));
  const nodes = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const cluster = clusterHandle(nodes);
  try {
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const [first, ...rest] = nodes as [RabbitNode, ...RabbitNode[]];
    for (const n of rest) {
      await n.ctl('stop_app');
      await n.ctl('join_cluster', first.node);
      await n.ctl('start_app');
    }
    await importDefinitions(first, definitionsPath);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** The cluster `startLocalCluster` started (in this process or another one), for stopping it. */
export function localCluster(): LocalCluster {
  return clusterHandle(CLUSTER_NAMES.map((name, i) => nodeHandle(name, CLUSTER_PORTS[i]!)));
}
