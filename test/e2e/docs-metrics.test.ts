// docs/operations.md#metrics against the code: every prom-client metric a package or service defines is
// in the tables with exactly its label names, and the tables name no metric that does not exist.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** name -> sorted label names, from every `new Counter|Gauge|Histogram|Summary({...})` in src/. */
function definedMetrics(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const roots = ['packages', 'services'].flatMap((top) =>
    readdirSync(join(repoRoot, top), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => join(repoRoot, top, d.name, 'src')),
  );
  for (const file of roots.flatMap((r) => {
    try {
      return sources(r);
    } catch {
      return [];
    }
  })) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/new (?:Counter|Gauge|Histogram|Summary)\(\{/g)) {
      // The options object: up to its matching brace.
      let depth = 0;
      let end = m.index + m[0].length - 1;
      for (; end < text.length; end++) {
        if (text[end] === '{') depth++;
        else if (text[end] === '}' && --depth === 0) break;
      }
      const options = text.slice(m.index, end);
      const name = /name: '([a-z0-9_]+)'/.exec(options)?.[1];
      assert.ok(name, `${file}: a metric whose name is not a literal`);
      const labels = /labelNames: \[([^\]]*)\]/.exec(options)?.[1] ?? '';
      found.set(name, [...labels.matchAll(/'([a-z_]+)'/g)].map((l) => l[1]!).sort());
    }
  }
  return found;
}

/** name -> sorted label names, from the tables of the Metrics section. */
function documentedMetrics(): Map<string, string[]> {
  const doc = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## Metrics'), doc.indexOf('\n## ', doc.indexOf('## Metrics') + 1));
  const found = new Map<string, string[]>();
  for (const row of section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| --') && !/^\| (Metric|Service) \|/.test(l))) {
    const cells = row
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const at = cells.findIndex((c) => /^`[a-z0-9_]+`/.test(c));
    assert.ok(at >= 0, `no metric name in ${row}`);
    const names = [...cells[at]!.matchAll(/`([a-z0-9_]+)`/g)].map((n) => n[1]!);
    const labels = cells[at + 1]!.split(',')
      .map((l) => l.trim())
      .filter(Boolean)
      .sort();
    for (const n of names) found.set(n, labels);
  }
  return found;
}

describe('docs/operations.md metrics', () => {
  it('should list every metric the code defines with exactly its labels, and no other', () => {
    const defined = definedMetrics();
    const documented = documentedMetrics();
    assert.ok(defined.size >= 30, `found only ${defined.size} metric definitions: the scan is broken`);
    assert.deepEqual([...documented.keys()].sort(), [...defined.keys()].sort());
    for (const [name, labels] of defined) assert.deepEqual(documented.get(name), labels, `labels of ${name}`);
  });
});
