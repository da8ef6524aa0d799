// Where the CPU of a measurement went, by process, from /proc (Linux): the answer to "which
// resource is saturated" that a ratio alone cannot give. Processes are grouped by what they run:
// RabbitMQ (beam.smp), PostgreSQL, Redis (shared with anything else the machine runs), each fleet
// service and the KMS emulator this bench started, this bench process, and the rest of the machine.
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface Sample {
  /** CPU ticks per pid (user + system, the process's own, not its children's). */
  ticks: Map<number, { group: string; ticks: number }>;
  /** The machine's busy and total ticks, all cores. */
  busy: number;
  total: number;
  cores: number;
}

function groupOf(pid: number, ppid: number, cmdline: string): string {
  if (pid === process.pid) return 'bench (clients, raw side)';
  if (cmdline.includes('beam.smp')) return 'rabbitmq';
  if (cmdline.startsWith('postgres')) return 'postgresql';
  if (cmdline.includes('redis-server')) return 'redis';
  // Only the processes this bench started count as the fleet's: another run's are the machine's.
  if (ppid !== process.pid) return 'other';
  const service = /services\/([a-z-]+)\/dist\/main\.js/.exec(cmdline);
  if (service) return `fleet ${service[1]}`;
  if (cmdline.includes('kms-emulator')) return 'kms emulator';
  return 'other';
}

function sample(): Sample {
  const ticks = new Map<number, { group: string; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command (which may hold spaces) start after its closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(pid, { group: groupOf(pid, Number(fields[1]), cmdline), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // The process ended between the listing and the read.
    }
  }
  const cpuLines = readFileSync('/proc/stat', 'utf8').split('\n');
  const all = cpuLines[0]!.split(/\s+/).slice(1).map(Number);
  const total = all.reduce((a, b) => a + b, 0);
  const idle = (all[3] ?? 0) + (all[4] ?? 0);
  return { ticks, busy: total - idle, total, cores: cpuLines.filter((l) => /^cpu\d/.test(l)).length };
}

export interface CpuUsage {
  /** CPU milliseconds per operation, per process group, largest first. */
  perOp: Array<{ group: string; ms: number }>;
  /** Share of all cores busy during the measurement (0..1). */
  machineBusy: number;
  cores: number;
}

/** Runs `fn` (which performs `ops` operations) and accounts the machine's CPU over it. */
export async function withCpu<T>(ops: number, fn: () => Promise<T>): Promise<{ result: T; cpu: CpuUsage }> {
  const before = sample();
  const result = await fn();
  const after = sample();
  const groups = new Map<string, number>();
  for (const [pid, a] of after.ticks) {
    const used = a.ticks - (before.ticks.get(pid)?.ticks ?? 0);
    if (used > 0) groups.set(a.group, (groups.get(a.group) ?? 0) + used);
  }
  const perOp = [...groups].map(([group, t]) => ({ group, ms: ((t / TICKS_PER_SECOND) * 1000) / ops })).sort((x, y) => y.ms - x.ms);
  return { result, cpu: { perOp, machineBusy: (after.busy - before.busy) / Math.max(1, after.total - before.total), cores: after.cores } };
}

/** One line per measurement: machine busy share, then CPU ms per operation by process group. */
export function printCpu(title: string, rows: Array<{ name: string; cpu: CpuUsage }>): void {
  console.log(`\n${title}`);
  for (const { name, cpu } of rows) {
    const total = cpu.perOp.reduce((a, g) => a + g.ms, 0);
    const parts = cpu.perOp.filter((g) => g.ms >= 0.005).map((g) => `${g.group} ${g.ms.toFixed(2)}`);
    console.log(`${name}: machine ${(cpu.machineBusy * 100).toFixed(0)} % busy of ${cpu.cores} cores; CPU ms per op ${total.toFixed(2)} = ${parts.join(', ')}`);
  }
}
