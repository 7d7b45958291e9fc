// The printed summary: one row per figure, Clicker beside the relay and (when
// it ran) nchan, each with Clicker's ratio to it, and issue 8's goals marked
// PASS or FAIL in the last column. A row group that compares something else
// (fanout3: three Clicker instances beside one) names its own columns in a
// heading row of its own.
import type { Cell, ColumnNames, Goal, Row } from './scenario';

function formatNumber(v: number, unit: string): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  // Counts (errors, subscribers) read as counts, not as 0.000; a time that happens to be whole keeps its decimals.
  if (Number.isInteger(v) && unit !== 'ms') return String(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(a >= 1 ? 2 : 3);
}

function cell(v: Cell | undefined, unit: string): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  const n = formatNumber(v, unit);
  return unit && n !== 'n/a' ? `${n} ${unit}` : n;
}

function ratio(a: Cell | undefined, b: Cell | undefined): number | null {
  if (typeof a !== 'number' || typeof b !== 'number' || b === 0) return null;
  const r = a / b;
  return Number.isFinite(r) ? r : null;
}

export function ratioOf(row: Row): number | null {
  if (row.ratio !== undefined) return row.ratio;
  return ratio(row.clicker, row.relay);
}

export function nchanRatioOf(row: Row): number | null {
  return ratio(row.clicker, row.nchan);
}

export function goalText(g: Goal): string {
  return `${g.pass === null ? 'n/a' : g.pass ? 'PASS' : 'FAIL'} ${g.text}`;
}

export interface TableOptions {
  /** Show the nchan columns (nchan was part of the run). */
  nchan: boolean;
}

/** Key telling one row group's headings from another's ('' for the table's own). */
const columnsKey = (c: ColumnNames | undefined) => (c ? `${c.group}\u0000${c.clicker}\u0000${c.relay}\u0000${c.ratio}` : '');

export function renderTable(rows: readonly Row[], opts: TableOptions = { nchan: false }): string {
  const x = (r: number | null) => (r === null ? '-' : `${r.toFixed(2)}x`);
  const header = ['figure', 'clicker', 'relay', 'clicker/relay', ...(opts.nchan ? ['nchan', 'clicker/nchan'] : []), 'goal (issue 8)'];
  // A row group with columns of its own (fanout3) gets a heading row naming them; rows
  // after it that have none get the table's own headings again.
  const body: string[][] = [];
  let current = '';
  for (const r of rows) {
    const key = columnsKey(r.columns);
    if (key !== current) {
      const c = r.columns;
      body.push(
        c
          ? [`[${c.group}]`, c.clicker, c.relay, c.ratio, ...(opts.nchan ? ['', ''] : []), '']
          : [...header.slice(0, -1).map((h, i) => (i === 0 ? `[${h}]` : h)), ''],
      );
      current = key;
    }
    body.push([
      r.figure,
      cell(r.clicker, r.unit),
      cell(r.relay, r.unit),
      x(ratioOf(r)),
      ...(opts.nchan ? [cell(r.nchan, r.unit), x(nchanRatioOf(r))] : []),
      (r.goals ?? []).map(goalText).join('; '),
    ]);
  }
  const last = header.length - 1;
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  // The figure and the goal read as text (left); the numbers line up on the right.
  const left = (i: number) => i === 0 || i === last;
  const line = (cells: string[]) => `| ${cells.map((c, i) => (left(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (left(i) ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}
