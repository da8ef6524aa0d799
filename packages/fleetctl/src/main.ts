import { parseArgs } from 'node:util';
import { FleetError } from '@wallet-fleet/contracts';
import { ConfigError, scrubCredentials } from '@wallet-fleet/service-kit';
import { commands, UsageError, type Command, type Values } from './commands.js';
import { loadCliConfig } from './config.js';
import { Session } from './session.js';

/** Where the CLI writes; the tests and the bin shim give process streams. */
export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

const processIo: Io = {
  out: (t) => void process.stdout.write(`${t}\n`),
  err: (t) => void process.stderr.write(`${t}\n`),
  env: process.env,
};

function usageLine(c: Command): string {
  return ['fleetctl', c.name, ...c.args, ...(c.usage ? [c.usage] : [])].join(' ');
}

function help(): string {
  return [
    'usage: fleetctl <command> [arguments] [--json]',
    '',
    ...commands.map((c) => `  ${usageLine(c)}\n      ${c.summary}`),
    '',
    'Output is a table for people; --json prints the result as JSON instead.',
    'Exit codes: 0 done, 1 failed (or found something wrong), 2 bad usage.',
    'Environment: AMQP_URL (its vhost is the one used), RABBITMQ_MANAGEMENT_URL, FLEET_HTTP_HOST,',
    '<SERVICE>_HTTP_PORT, FLEETCTL_TIMEOUT_MS (default 10000); the defaults are the local fleet.',
  ].join('\n');
}

/** The command named by the first one or two words of argv, and the rest of argv. */
function find(argv: string[]): { command: Command; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = commands.find((c) => c.name === name);
    if (command) return { command, rest: argv.slice(words) };
  }
  return undefined;
}

/**
 * Runs one command line and returns the exit code: 0 done, 1 failed or found a problem, 2 bad
 * usage. Never throws; every connection it opened is closed before it returns.
 */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    io.out(help());
    return argv.length === 0 ? 2 : 0;
  }
  const found = find(argv);
  if (!found) {
    io.err(`fleetctl: unknown command ${argv.slice(0, 2).join(' ')}\n\n${help()}`);
    return 2;
  }
  const { command, rest } = found;
  let values: Values;
  let args: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      strict: true,
      options: { ...(command.options ?? {}), json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
    values = parsed.values as Values;
    args = parsed.positionals;
    if (values.help) {
      io.out(`usage: ${usageLine(command)} [--json]\n  ${command.summary}`);
      return 0;
    }
    if (args.length !== command.args.length) {
      throw new UsageError(
        args.length < command.args.length ? `missing ${command.args.slice(args.length).join(' ')}` : `unexpected ${args.slice(command.args.length).join(' ')}`,
      );
    }
  } catch (e) {
    io.err(`fleetctl: ${(e as Error).message}\nusage: ${usageLine(command)} [--json]`);
    return 2;
  }
  const json = values.json === true;

  let session: Session;
  try {
    session = new Session(loadCliConfig(io.env));
  } catch (e) {
    if (e instanceof ConfigError) {
      io.err(`fleetctl: ${e.message}`);
      return 2;
    }
    throw e;
  }
  try {
    const result = await command.run(session, args, values, (line) => io.err(line));
    io.out(json ? JSON.stringify(result.data, null, 2) : result.human);
    return result.exitCode ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`fleetctl: ${e.message}\nusage: ${usageLine(command)} [--json]`);
      return 2;
    }
    const err = e instanceof FleetError ? e : undefined;
    const message = scrubCredentials(err ? `${err.code}: ${err.message}` : ((e as Error).message ?? String(e)));
    if (json) io.out(JSON.stringify({ ok: false, error: err ? err.toBody() : { code: 'INTERNAL', message } }, null, 2));
    io.err(`fleetctl: ${message}`);
    return 1;
  } finally {
    await session.close();
  }
}
