/** A column of a human table: the header, and how to read the cell from a row. */
export interface Column<R> {
  header: string;
  value: (row: R) => unknown;
  /** Numbers read best right-aligned. */
  align?: 'left' | 'right';
}

function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'string') return v.replace(/\s+/g, ' ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Rows as a plain-text table (padding only: it stays readable when piped to a file or grep). */
export function table<R>(rows: readonly R[], columns: ReadonlyArray<Column<R>>): string {
  const cells = rows.map((r) => columns.map((c) => cell(c.value(r))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].join('\n');
}

/** `key: value` lines for one object (nested values as JSON). */
export function fields(obj: Record<string, unknown>): string {
  const entries = Object.entries(obj);
  const width = Math.max(0, ...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`).join('\n');
}
