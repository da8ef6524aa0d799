import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** A free TCP port on loopback (released before it is returned; fine for tests). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface ServiceProcess {
  name: string;
  port: number;
  child: ChildProcess;
  /** Every line the process wrote to stdout/stderr so far. */
  logs: string[];
  /** Resolves with the exit code (or signal name) once the process ended. */
  exited: Promise<number | string>;
  url(path: string): string;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<number | string>;
}

/**
 * Starts `node services/<name>/dist/main.js` as its own process with `env` on top of this one's,
 * and waits until its `/ready` answers 200 (or throws with its last log lines).
 */
export async function startService(name: string, env: Record<string, string>, { readyTimeoutMs = 20_000 } = {}): Promise<ServiceProcess> {
  const port = env.HTTP_PORT ? Number(env.HTTP_PORT) : await freePort();
  const child = spawn(process.execPath, ['--enable-source-maps', `services/${name}/dist/main.js`], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'info', ...env, HTTP_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let buf = '';
    stream?.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      logs.push(...lines);
    });
  }
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  const proc: ServiceProcess = {
    name,
    port,
    child,
    logs,
    exited,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
  const deadline = Date.now() + readyTimeoutMs;
  let ended = false;
  void exited.then(() => (ended = true));
  while (Date.now() < deadline && !ended) {
    try {
      const res = await fetch(proc.url('/ready'));
      if (res.status === 200) return proc;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not become ready${ended ? ' (it exited)' : ''}:\n${logs.slice(-30).join('\n')}`);
}
