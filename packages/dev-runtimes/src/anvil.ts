import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FleetError, ErrorCode } from '@wallet-fleet/contracts';

export interface Anvil {
  readonly url: string;
  readonly port: number;
  /** Settles when the node process has ended, stopped or not. */
  readonly exited: Promise<void>;
  stop(): Promise<void>;
}

export interface AnvilOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to listen on; default 127.0.0.1 (a container gives 0.0.0.0). */
  host?: string;
  startTimeoutMs?: number;
}

/**
 * Starts a local anvil node (chain id 31337, ten funded dev accounts, instant mining) and resolves
 * once it answers eth_chainId. Its banner (which lists the well-known development private keys) is
 * read for the port and never printed. Throws UNAVAILABLE when the binary cannot be found or the node
 * does not come up in `startTimeoutMs` (a port already taken included).
 */
export async function startAnvil(options: AnvilOptions = {}): Promise<Anvil> {
  const bin = anvilBinary();
  const child = spawn(bin, ['--host', options.host ?? '127.0.0.1', '--port', String(options.port ?? 0), '--chain-id', '31337'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Do not leave an orphaned node behind when this process exits without calling stop().
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  try {
    // With --port 0 the chosen port is only known from anvil's "Listening on" line.
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new FleetError(ErrorCode.UNAVAILABLE, 'anvil did not start in time')), options.startTimeoutMs ?? 15_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Listening on [\d.]+:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          child.stdout!.removeAllListeners('data');
          child.stdout!.resume();
          resolve(Number(m[1]));
        }
        if (out.length > 100_000) out = out.slice(-1000);
      });
      child.stderr!.resume();
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new FleetError(ErrorCode.UNAVAILABLE, `anvil failed to start: ${e.message}`, { cause: e }));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new FleetError(ErrorCode.UNAVAILABLE, `anvil exited with ${code} before listening`));
      });
    });
    const url = `http://127.0.0.1:${port}`;
    await waitForChainId(url, options.startTimeoutMs ?? 15_000);
    return { url, port, exited, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The anvil binary: `ANVIL_BIN`, else the platform package of @foundry-rs/anvil (an optional
 * dependency of it, so resolved through it: with pnpm's isolated layout only that chain of requires
 * finds it). Throws UNAVAILABLE when there is none for this platform.
 */
export function anvilBinary(): string {
  if (process.env.ANVIL_BIN) return process.env.ANVIL_BIN;
  const platform = `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  try {
    const req = createRequire(import.meta.url);
    const wrapper = req.resolve('@foundry-rs/anvil/package.json');
    const pkg = createRequire(wrapper).resolve(`@foundry-rs/anvil-${platform}/package.json`);
    return join(dirname(pkg), 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  } catch (e) {
    throw new FleetError(ErrorCode.UNAVAILABLE, `no anvil binary for ${platform} (set ANVIL_BIN)`, { cause: e });
  }
}

async function waitForChainId(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(1000),
      });
      const body = (await res.json()) as { result?: string };
      if (body.result) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new FleetError(ErrorCode.UNAVAILABLE, 'anvil did not answer eth_chainId in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
