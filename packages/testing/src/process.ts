import { spawn } from 'node:child_process';

export interface ProcessResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node …args` as a process of its own, as an operator would, and resolves once it has
 * exited and closed its output, with its exit code and what it printed. `env` is the child's
 * whole environment (spread `process.env` into it to inherit). Rejects only when the process
 * cannot be started.
 */
export function runNode(args: string[], { env, cwd }: { env: NodeJS.ProcessEnv; cwd?: string }): Promise<ProcessResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { env, ...(cwd ? { cwd } : {}), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}
