// Plain-text tables for terminals: the CLI's lists and the benchmark's report.
/** A figure: a number with an optional unit ("64.0 MiB", "210 MiB/s", "3 s"), or "-". */
const FIGURE = /^(?:-|-?\d+(?:\.\d+)?(?: [A-Za-z]+(?:\/s)?)?)$/;

/** Text columns, left-aligned; columns of figures right-aligned. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => FIGURE.test(r[i] ?? '')));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
