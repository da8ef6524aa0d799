/** Percentile of sorted samples (nearest rank). */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Measurement {
  name: string;
  ops: number;
  seconds: number;
  /** Latency samples in ms (may be empty for pure throughput runs). */
  latencies: number[];
}

export function summarize(m: Measurement) {
  const sorted = [...m.latencies].sort((a, b) => a - b);
  return {
    name: m.name,
    opsPerSec: m.ops / m.seconds,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
  };
}

/** Runs `op` `total` times with `concurrency` in flight; records each call's latency. */
export async function runConcurrent(name: string, total: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<Measurement> {
  const latencies: number[] = new Array(total);
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= total) return;
        const t = process.hrtime.bigint();
        await op(i);
        latencies[i] = Number(process.hrtime.bigint() - t) / 1e6;
      }
    }),
  );
  return { name, ops: total, seconds: Number(process.hrtime.bigint() - start) / 1e9, latencies };
}

const fmt = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : '-');

/** Prints rows of `[fleet, raw]` pairs as a table with the fleet/raw ratio. */
export function printTable(title: string, rows: Array<{ fleet: Measurement; raw: Measurement; note?: string }>): void {
  console.log(`\n${title}`);
  const header = ['measurement', 'ops/s', 'p50 ms', 'p99 ms', 'raw baseline', 'raw ops/s', 'raw p50', 'raw p99', 'ratio (ops/s)', 'p50 overhead ms'];
  const lines = rows.map(({ fleet, raw, note }) => {
    const f = summarize(fleet);
    const r = summarize(raw);
    return [
      f.name,
      fmt(f.opsPerSec, 0),
      fmt(f.p50),
      fmt(f.p99),
      r.name,
      fmt(r.opsPerSec, 0),
      fmt(r.p50),
      fmt(r.p99),
      fmt(f.opsPerSec / r.opsPerSec),
      fmt(f.p50 - r.p50),
      ...(note ? [note] : []),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i] ?? 0)).join('  ');
  console.log(row(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(row(l));
}
