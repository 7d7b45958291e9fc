// The printed summary: one row per figure, Clicker beside the baseline.
import type { Row } from './scenario';

function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString('en-US');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return v.toFixed(a >= 1 ? 2 : 3);
}

function cell(v: number | string | null, unit: string): string {
  if (v === null) return '-';
  if (typeof v === 'string') return v;
  const n = formatNumber(v);
  return unit && n !== 'n/a' ? `${n} ${unit}` : n;
}

export function ratioOf(row: Row): number | null {
  if (row.ratio !== undefined) return row.ratio;
  if (typeof row.clicker !== 'number' || typeof row.relay !== 'number' || row.relay === 0) return null;
  const r = row.clicker / row.relay;
  return Number.isFinite(r) ? r : null;
}

export function renderTable(rows: readonly Row[]): string {
  const header = ['figure', 'clicker', 'relay', 'clicker/relay'];
  const body = rows.map((r) => {
    const ratio = ratioOf(r);
    return [r.figure, cell(r.clicker, r.unit), cell(r.relay, r.unit), ratio === null ? '-' : `${ratio.toFixed(2)}x`];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...body.map(line)].join('\n');
}
