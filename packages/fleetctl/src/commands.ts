import { ErrorCode, FleetError, operations, type OperationName, type RequestOf, type ResultOf } from '@wallet-fleet/contracts';
import { brokerAccessFromEnv, brokerUserOf } from '@wallet-fleet/messaging';
import { vhostOf } from './config.js';
import * as dlq from './dlq.js';
import { httpJson, listQueues } from './http.js';
import { fields, table } from './output.js';
import type { Session } from './session.js';

/** What a command produced: `data` for `--json`, `human` for people; exit code 0 unless given. */
export interface Output {
  data: unknown;
  human: string;
  exitCode?: number;
}

/** A mistake in the command line (exit 2, usage shown). */
export class UsageError extends Error {}

type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** `dlq peek` */
  name: string;
  /** Positionals after the name, e.g. `<queue>`; all required. */
  args: string[];
  /** Option hint for the usage line, e.g. `[-n <count>]`. */
  usage?: string;
  summary: string;
  options?: Record<string, OptionSpec>;
  run(s: Session, args: string[], values: Values, progress: (line: string) => void): Promise<Output>;
}

function int(values: Values, name: string, dflt: number | undefined, min: number, max: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

const str = (values: Values, name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
const list = (values: Values, name: string): string[] => (Array.isArray(values[name]) ? (values[name] as string[]) : []);

/** Calls an operation of the catalogue; its FleetError (a `{ok:false}` reply, UNROUTABLE, TIMEOUT) propagates. */
async function call<Op extends OperationName>(s: Session, op: Op, body: RequestOf<Op>): Promise<ResultOf<Op>> {
  const b = await s.broker();
  try {
    return await b.request(op, body, { timeoutMs: s.config.timeoutMs });
  } catch (e) {
    if (e instanceof FleetError && e.code === ErrorCode.UNROUTABLE) {
      throw new FleetError(ErrorCode.UNROUTABLE, `no service takes ${op} in this vhost: is ${operations[op].owner} running?`);
    }
    throw e;
  }
}

type Wallet = ResultOf<'wallet.management.get'>;
const walletTable = (items: Wallet[]) =>
  table(items, [
    { header: 'WALLET', value: (w) => w.walletId },
    { header: 'CHAIN', value: (w) => w.chain },
    { header: 'ADDRESS', value: (w) => w.address },
    { header: 'ACTIVE', value: (w) => (w.isActive ? 'yes' : 'no') },
    { header: 'LABEL', value: (w) => w.label },
    { header: 'CREATED', value: (w) => w.createdAt },
  ]);

/** One page of a listing: `empty` when it has no rows, else its table, and the option that fetches the next page if there is one. */
const page = (count: number, rows: () => string, empty: string, next: { option: string; cursor: string | null | undefined }) =>
  count === 0 ? empty : next.cursor ? `${rows()}\nmore: ${next.option} ${next.cursor}` : rows();

const provisioningTable = (r: ResultOf<'wallet.provisioning.status'>) =>
  r.chains.length === 0
    ? `no provisioning record for ${r.userId}`
    : table(r.chains, [
        { header: 'CHAIN', value: (c) => c.chain },
        { header: 'STATUS', value: (c) => c.status },
        { header: 'ATTEMPTS', value: (c) => c.attempts, align: 'right' },
        { header: 'ADDRESS', value: (c) => c.address },
        { header: 'LAST ERROR', value: (c) => (c.lastError ? `${c.lastError.code}: ${c.lastError.message}` : null) },
        { header: 'UPDATED', value: (c) => c.updatedAt },
      ]);

const dlqCommands: Command[] = [
  {
    name: 'dlq list',
    args: [],
    summary: 'dead-letter queues of the vhost and how many messages each holds',
    async run(s) {
      const vhost = vhostOf(s.config.amqpUrl);
      const names = (await listQueues(s.config.managementUrl, vhost, s.config.timeoutMs)).map((q) => q.name).filter((n) => n.endsWith('.dlq'));
      // Counts straight from the broker: the management API's lag by seconds, which after a
      // replay or purge would show what is no longer there.
      const conn = await s.amqp();
      const rows: Array<{ dlq: string; messages: number }> = [];
      for (const name of names.sort()) {
        // A queue deleted since the listing is not shown (NOT_FOUND); any other error fails the command.
        const messages = await dlq.depth(conn, name).catch((e: unknown) => {
          if (e instanceof FleetError && e.code === ErrorCode.NOT_FOUND) return undefined;
          throw e;
        });
        if (messages !== undefined) rows.push({ dlq: name, messages });
      }
      return {
        data: rows,
        human:
          rows.length === 0
            ? `no dead-letter queues in vhost ${vhost}`
            : table(rows, [
                { header: 'DLQ', value: (r) => r.dlq },
                { header: 'MESSAGES', value: (r) => r.messages, align: 'right' },
              ]),
      };
    },
  },
  {
    name: 'dlq peek',
    args: ['<queue>'],
    usage: '[-n <count>]',
    summary: 'the first dead letters with why they failed; nothing is removed',
    options: { n: { type: 'string', short: 'n' } },
    async run(s, [queue], values) {
      const n = int(values, 'n', 10, 1, 1000)!;
      const r = await dlq.peek(await s.amqp(), queue!, n);
      const human = [
        `${r.dlq}: ${r.total} message(s), showing ${r.messages.length}`,
        ...(r.messages.length === 0
          ? []
          : [
              table(r.messages, [
                { header: 'MESSAGE ID', value: (m) => m.messageId },
                { header: 'ROUTING KEY', value: (m) => m.routingKey },
                { header: 'REASON', value: (m) => m.reason },
                { header: 'ATTEMPT', value: (m) => m.attempt, align: 'right' },
                { header: 'AT', value: (m) => m.at },
                { header: 'ERROR', value: (m) => (m.errorCode ? `${m.errorCode}: ${m.errorMessage ?? ''}` : null) },
              ]),
            ]),
      ].join('\n');
      return { data: r, human };
    },
  },
  {
    name: 'dlq replay',
    args: ['<queue>'],
    usage: '(--id <messageId>... | --all)',
    summary: 'move dead letters back to their queue, each confirmed before it leaves the DLQ',
    options: { id: { type: 'string', multiple: true }, all: { type: 'boolean' } },
    async run(s, [queue], values, progress) {
      const ids = list(values, 'id');
      if (ids.length === 0 && values.all !== true) throw new UsageError('say which messages: --id <messageId> (repeatable) or --all');
      if (ids.length > 0 && values.all === true) throw new UsageError('--id and --all exclude each other');
      dlq.assertReplayer(queue!, brokerUserOf(s.config.amqpUrl), brokerAccessFromEnv());
      const from = dlq.queuePair(queue!).dlq;
      const broker = await s.broker();
      let last = Date.now();
      const r = await dlq.replay(await s.amqp(), broker, queue!, {
        ...(ids.length > 0 ? { ids: new Set(ids) } : {}),
        onProgress: (done, total) => {
          // Long runs say where they are, once a second by default (on stderr: stdout stays the result).
          if (Date.now() - last >= s.config.progressMs) {
            last = Date.now();
            progress(`replayed ${done} of ${total} from ${from}`);
          }
        },
      });
      const lines = [`replayed ${r.replayed.length} message(s) from ${r.dlq} to ${r.queue}`];
      for (const k of r.skipped) lines.push(`kept ${k.messageId ?? '(no id)'} in ${r.dlq}: ${k.why}`);
      if (r.notFound.length > 0) lines.push(`not in ${r.dlq}: ${r.notFound.join(', ')}`);
      if (r.error) lines.push(`stopped: ${r.error.message}; ${r.error.messageId ?? 'that message'} and the rest stay in ${r.dlq}`);
      return { data: r, human: lines.join('\n'), exitCode: r.error || r.notFound.length > 0 || r.skipped.length > 0 ? 1 : 0 };
    },
  },
  {
    name: 'dlq purge',
    args: ['<queue>'],
    usage: '--yes',
    summary: 'delete every message of a DLQ for good',
    options: { yes: { type: 'boolean' } },
    async run(s, [queue], values) {
      const { dlq: name } = dlq.queuePair(queue!);
      if (values.yes !== true) {
        const held = await dlq.depth(await s.amqp(), name);
        throw new UsageError(`purge deletes the ${held} message(s) of ${name} for good; add --yes to do it`);
      }
      const r = await dlq.purge(await s.amqp(), queue!);
      return { data: r, human: `purged ${r.purged} message(s) from ${r.dlq}` };
    },
  },
];

const fleetCommands: Command[] = [
  {
    name: 'wallet get',
    args: ['<userId>', '<walletId>'],
    summary: "one of a user's wallets (wallet.management.get)",
    async run(s, [userId, walletId]) {
      const w = await call(s, 'wallet.management.get', { userId: userId!, walletId: walletId! });
      return { data: w, human: fields(w) };
    },
  },
  {
    name: 'wallet list',
    args: ['<userId>'],
    usage: '[--chain SOL|ETH|APTOS]',
    summary: "a user's wallets (wallet.management.list)",
    options: { chain: { type: 'string' } },
    async run(s, [userId], values) {
      const chain = str(values, 'chain');
      const r = await call(s, 'wallet.management.list', { userId: userId!, ...(chain ? { chain: chain as never } : {}) });
      return { data: r, human: r.items.length === 0 ? `no wallets for ${userId}` : walletTable(r.items) };
    },
  },
  {
    name: 'provisioning status',
    args: ['<userId>'],
    summary: 'per-chain provisioning of a user (wallet.provisioning.status)',
    async run(s, [userId]) {
      const r = await call(s, 'wallet.provisioning.status', { userId: userId! });
      return { data: r, human: provisioningTable(r) };
    },
  },
  {
    name: 'provisioning retrigger',
    args: ['<userId>'],
    usage: '[--chain <chain>...]',
    summary: 'provision a user again, every chain or the given ones (wallet.provisioning.provision)',
    options: { chain: { type: 'string', multiple: true } },
    async run(s, [userId], values) {
      const chains = list(values, 'chain');
      const r = await call(s, 'wallet.provisioning.provision', { userId: userId!, ...(chains.length > 0 ? { chains: chains as never } : {}) });
      return { data: r, human: provisioningTable(r) };
    },
  },
  {
    name: 'deposits stuck',
    args: [],
    usage: '[--older-than <seconds>] [--limit <n>] [--after <cursor>]',
    summary: 'deposits still pending after an age, default 900 s (wallet.deposits.stuck)',
    options: { 'older-than': { type: 'string' }, limit: { type: 'string' }, after: { type: 'string' } },
    async run(s, _args, values) {
      const after = str(values, 'after');
      const r = await call(s, 'wallet.deposits.stuck', {
        olderThanSeconds: int(values, 'older-than', 900, 0, 365 * 86_400)!,
        limit: int(values, 'limit', 100, 1, 1000)!,
        ...(after ? { after } : {}),
      });
      const rows = () =>
        table(r.deposits, [
          { header: 'DEPOSIT', value: (d) => d.depositId },
          { header: 'CHAIN', value: (d) => d.chain },
          { header: 'TX', value: (d) => d.txHash },
          { header: 'ACCEPTED', value: (d) => d.acceptedAt },
          { header: 'ATTEMPTS', value: (d) => d.attempts, align: 'right' },
        ]);
      return { data: r, human: page(r.deposits.length, rows, 'no stuck deposits', { option: '--after', cursor: r.next }) };
    },
  },
  {
    name: 'deposits reconcile',
    args: ['<depositId>'],
    usage: '[--max-age <seconds>]',
    summary: 'check one pending deposit on chain now, default max age 3600 s (wallet.deposits.reconcile)',
    options: { 'max-age': { type: 'string' } },
    async run(s, [depositId], values) {
      const r = await call(s, 'wallet.deposits.reconcile', { depositId: depositId!, maxAgeSeconds: int(values, 'max-age', 3600, 1, 365 * 86_400)! });
      return { data: r, human: fields(r) };
    },
  },
  {
    name: 'deposits summary',
    args: [],
    summary: 'deposit counts by status and ledger drift (wallet.deposits.summary)',
    async run(s) {
      const r = await call(s, 'wallet.deposits.summary', {});
      return { data: r, human: fields({ ...r.byStatus, oldestPendingAt: r.oldestPendingAt, ...r.drift }) };
    },
  },
  {
    name: 'audit query',
    args: [],
    usage: '[--user <id>] [--action <a>] [--resource-type <t>] [--resource-id <id>] [--from <iso>] [--to <iso>] [--limit <n>] [--cursor <c>]',
    summary: 'the audit log, newest first (wallet.audit.query)',
    options: {
      user: { type: 'string' },
      action: { type: 'string' },
      'resource-type': { type: 'string' },
      'resource-id': { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
    },
    async run(s, _args, values) {
      const pick: Array<[string, string]> = [
        ['user', 'userId'],
        ['action', 'action'],
        ['resource-type', 'resourceType'],
        ['resource-id', 'resourceId'],
        ['from', 'from'],
        ['to', 'to'],
        ['cursor', 'cursor'],
      ];
      const body = Object.fromEntries(pick.filter(([o]) => str(values, o) !== undefined).map(([o, k]) => [k, str(values, o)]));
      const r = await call(s, 'wallet.audit.query', { ...body, limit: int(values, 'limit', 20, 1, 500)! });
      const rows = () =>
        table(r.items, [
          { header: 'SEQ', value: (e) => e.sequence, align: 'right' },
          { header: 'OCCURRED', value: (e) => e.occurredAt },
          { header: 'ACTION', value: (e) => e.action },
          { header: 'STATUS', value: (e) => e.status },
          { header: 'USER', value: (e) => e.userId },
          { header: 'RESOURCE', value: (e) => `${e.resource.type}:${e.resource.id}` },
          { header: 'ACTOR', value: (e) => `${e.actor.type}:${e.actor.id}` },
        ]);
      return { data: r, human: page(r.items.length, rows, 'no audit events match', { option: '--cursor', cursor: r.nextCursor }) };
    },
  },
  {
    name: 'audit verify',
    args: [],
    summary: 'walk the hash chain of the audit log; exit 1 when it is broken (wallet.audit.verify)',
    async run(s) {
      const r = await call(s, 'wallet.audit.verify', {});
      return { data: r, human: fields(r), exitCode: r.valid ? 0 : 1 };
    },
  },
  {
    name: 'reconcile run',
    args: [],
    summary: "a reconciliation pass now, with its report (POST /runs on the reconciliation service's admin listener)",
    async run(s) {
      const admin = s.config.reconciliationAdmin;
      const { status, body } = await httpJson('POST', `${admin.url}/runs`, Math.max(s.config.timeoutMs, 60_000), admin.token);
      if (status === 409) return { data: body, human: 'another replica is running a pass now; its report will be in GET /runs', exitCode: 1 };
      if (status === 401) return { data: body, human: 'the admin listener wants a bearer token: set ADMIN_TOKEN to its ADMIN_TOKEN', exitCode: 1 };
      if (status !== 200) return { data: body ?? { status }, human: `the reconciliation service answered ${status}: ${JSON.stringify(body)}`, exitCode: 1 };
      const r = body as { outcome: string; runId?: string; report?: Record<string, unknown> };
      return { data: r, human: fields({ outcome: r.outcome, runId: r.runId, ...(r.report ?? {}) }), exitCode: r.outcome === 'completed' ? 0 : 1 };
    },
  },
  {
    name: 'health',
    args: [],
    usage: '[--service <name>...]',
    summary: "every service's /ready and the depth of every queue; exit 1 when something is not ready",
    options: { service: { type: 'string', multiple: true } },
    async run(s, _args, values) {
      const only = list(values, 'service');
      const unknown = only.filter((n) => !s.config.services.some((x) => x.name === n));
      if (unknown.length > 0) throw new UsageError(`unknown service ${unknown.join(', ')} (known: ${s.config.services.map((x) => x.name).join(', ')})`);
      const targets = s.config.services.filter((x) => only.length === 0 || only.includes(x.name));
      const probe = Math.min(s.config.timeoutMs, 3000);
      const services = await Promise.all(
        targets.map(async (t) => {
          try {
            const { status, body } = await httpJson('GET', `${t.url}/ready`, probe);
            const failed = (body as { failed?: string[] } | undefined)?.failed ?? [];
            return { service: t.name, url: t.url, ready: status === 200, status: status === 200 ? 'ready' : `not ready (${status})`, failed };
          } catch {
            return { service: t.name, url: t.url, ready: false, status: 'down (no answer)', failed: [] as string[] };
          }
        }),
      );
      const vhost = vhostOf(s.config.amqpUrl);
      // Without the management API the probes still say what they know; the queues say why not.
      let queues: Array<{ queue: string; ready: number; unacked: number; consumers: number; dlq: number | null }> | null = null;
      let queuesError: string | undefined;
      try {
        const all = await listQueues(s.config.managementUrl, vhost, s.config.timeoutMs);
        const byName = new Map(all.map((q) => [q.name, q]));
        // Work queues only, each with its DLQ beside it; delay tiers (and the per-attempt delay
        // queues of older releases) hold copies on their way back.
        queues = all
          .filter((q) => !q.name.endsWith('.dlq') && !/\.(retry|delay)\.\d+$/.test(q.name) && !q.name.startsWith('amq.'))
          .map((q) => ({
            queue: q.name,
            ready: q.messages_ready,
            unacked: q.messages_unacknowledged,
            consumers: q.consumers,
            dlq: byName.get(`${q.name}.dlq`)?.messages_ready ?? null,
          }))
          .sort((a, b) => a.queue.localeCompare(b.queue));
      } catch (e) {
        queuesError = (e as Error).message;
      }
      const human = [
        table(services, [
          { header: 'SERVICE', value: (r) => r.service },
          { header: 'READY', value: (r) => r.status },
          { header: 'FAILED CHECKS', value: (r) => r.failed.join(', ') },
          { header: 'URL', value: (r) => r.url },
        ]),
        '',
        queues === null
          ? `queue depths unknown: ${queuesError}`
          : queues.length === 0
            ? `no queues in vhost ${vhost}`
            : `${table(queues, [
                { header: 'QUEUE', value: (r) => r.queue },
                { header: 'READY', value: (r) => r.ready, align: 'right' },
                { header: 'UNACKED', value: (r) => r.unacked, align: 'right' },
                { header: 'CONSUMERS', value: (r) => r.consumers, align: 'right' },
                { header: 'DLQ', value: (r) => r.dlq, align: 'right' },
              ])}\n(counts from the management API lag the broker by a few seconds)`,
      ].join('\n');
      const data = { services, queues, ...(queuesError ? { queuesError } : {}) };
      return { data, human, exitCode: services.every((x) => x.ready) && queues !== null ? 0 : 1 };
    },
  },
];

export const commands: readonly Command[] = [...dlqCommands, ...fleetCommands];
