// Which metric names a PromQL expression reads, and which names a /metrics page offers: enough of
// PromQL for the expressions of infra/prometheus and infra/grafana (a name is any identifier left
// once strings, label matchers, ranges, grouping clauses, function calls and keywords are removed).

const KEYWORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/** Metric names read by `expr` (Grafana's `$__rate_interval` and friends count as ranges). */
export function metricNames(expr: string): string[] {
  const s = expr
    .replace(/\$__\w+/g, '5m')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = s.slice(m.index! + word.length).trimStart();
    const before = s.slice(0, m.index!);
    if (after.startsWith('(')) continue; // a function or aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    if (/[0-9.]$/.test(before) || /\d[eE]$/.test(before)) continue; // part of a number or duration (5m, 1e3)
    names.add(word);
  }
  return [...names];
}

/**
 * The series names a Prometheus text page offers: each `# TYPE` family, with `_bucket`, `_sum`,
 * `_count` for histograms and `_sum`, `_count` for summaries.
 */
export function exportedNames(page: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of page.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name!);
    if (type === 'histogram') for (const x of ['_bucket', '_sum', '_count']) names.add(name + x);
    if (type === 'summary') for (const x of ['_sum', '_count']) names.add(name + x);
  }
  return names;
}

/** Names Prometheus makes itself, per scrape target. */
export const PROMETHEUS_OWN = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

/**
 * RabbitMQ's rabbitmq_prometheus plugin, per-object endpoint (/metrics/per-object), names we use:
 * checked against this documented list, since that plugin is not enabled on the test broker.
 */
export const RABBITMQ_OWN = new Set([
  'rabbitmq_queue_messages_ready',
  'rabbitmq_queue_messages_unacked',
  'rabbitmq_queue_messages',
  'rabbitmq_queue_consumers',
]);
