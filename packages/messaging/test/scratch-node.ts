import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A RabbitMQ node of our own for tests that must hurt a broker (resource alarms): never the
 * machine's node (rabbit@localhost), which every suite shares. It takes the first free AMQP port of
 * 5701-5703 (distribution port + 20000), its own name and data directory; `stop()` stops it and
 * removes the directory. Starting takes about 10-25 s: keep such tests few.
 */
export interface ScratchNode {
  url: string;
  node: string;
  ctl(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export async function startScratchNode(tag: string): Promise<ScratchNode> {
  let port: number | undefined;
  for (const p of [5701, 5702, 5703]) {
    if ((await free(p)) && (await free(p + 20_000))) {
      port = p;
      break;
    }
  }
  if (!port) throw new Error('no free port in 5701-5703 for a scratch RabbitMQ node');
  const name = `${tag}${process.pid}`;
  const node = `${name}@localhost`;
  const dir = `/tmp/rq-${name}`;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/plugins`, '[].');
  writeFileSync(`${dir}/rabbitmq.conf`, `listeners.tcp.local = 127.0.0.1:${port}\nloopback_users = none\n`);
  await run('chown', ['-R', 'rabbitmq:rabbitmq', dir]);
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: node,
    RABBITMQ_DIST_PORT: String(port + 20_000),
    RABBITMQ_CONFIG_FILE: `${dir}/rabbitmq.conf`,
    RABBITMQ_MNESIA_BASE: `${dir}/mnesia`,
    RABBITMQ_LOG_BASE: `${dir}/log`,
    RABBITMQ_ENABLED_PLUGINS_FILE: `${dir}/plugins`,
    RABBITMQ_PID_FILE: `${dir}/pid`,
  };
  const ctl = async (...args: string[]) => (await run('rabbitmqctl', ['-n', node, ...args], { timeout: 60_000 })).stdout;
  const stop = async () => {
    const stopped = await ctl('stop').then(
      () => true,
      () => false,
    );
    if (!stopped) {
      // Not reachable through the CLI (still booting, or hung): end it by its pid.
      const pid = Number(readFileSafe(`${dir}/pid`));
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run('rabbitmq-server', ['-detached'], { env, timeout: 30_000 });
    // await_startup needs the node registered with epmd, which takes a moment after -detached.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const up = await ctl('await_startup', '--timeout', '30').then(
        () => true,
        () => false,
      );
      if (up) break;
      if (Date.now() > deadline) throw new Error(`scratch RabbitMQ node ${node} did not start within 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `amqp://guest:guest@127.0.0.1:${port}/`, node, ctl, stop };
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}
