// Every saved run, goal by goal: how often each of issue 8's goals was met,
// per machine, and the range of the figure it judges. A run of some
// scenarios only (`--only`) counts for the goals it measured. One run says
// little on these shared 2-core machines, where the same code lands on either
// side of a line from hour to hour; the saved runs together say where it
// stands. Reads bench/results/*.json, runs nothing.
//
//   npm run bench:history                              all saved runs
//   npm run bench:history -- --since 2026-12-02T21     from a moment on (a UTC prefix)
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { percentile } from './lib/stats';

/** The parts of a results file (written by run.ts) this reads. */
interface SavedRow {
  figure: string;
  unit: string;
  clicker: number | string | null;
  ratio: number | null;
  ratioNchan?: number | null;
  goals?: { text: string; pass: boolean | null }[];
}
interface SavedRun {
  startedAt: string;
  commit: string;
  quick: boolean;
  machine: { cpuModel: string };
  table: SavedRow[];
  scenarios: { name: string }[];
}

/** The scenarios that judge a goal: a run without one of them is a partial run. */
const GOAL_SCENARIOS = ['latency', 'memory', 'tap', 'fanout', 'fanout10k', 'capacity'];

const USAGE = 'usage: node --import tsx bench/history.ts [--since <UTC time prefix, e.g. 2026-12-02T21>]';
const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');

function parseCli(): { since: string } {
  try {
    const { values } = parseArgs({ options: { since: { type: 'string' } } });
    return { since: values.since ?? '' };
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

/** The number a goal judges: the ratio to the peer it names, or the figure itself. */
function judged(row: SavedRow, goal: string): { value: number; unit: string } | null {
  const pick = /\bnchan\b/.test(goal) ? row.ratioNchan : /\brelay\b/.test(goal) ? row.ratio : row.clicker;
  if (typeof pick !== 'number') return null;
  return { value: pick, unit: /\b(nchan|relay)\b/.test(goal) ? 'x' : row.unit ? ` ${row.unit}` : '' };
}

const fmt = (v: number, unit: string) => `${unit === 'x' ? v.toFixed(2) : String(Math.round(v * 100) / 100)}${unit}`;

function main(): void {
  const { since } = parseCli();
  // Piped into head or less that quit early: stop quietly, as a Unix tool does.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(0);
  });
  const runs: SavedRun[] = readdirSync(RESULTS)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(RESULTS, f), 'utf8')) as SavedRun)
    // Quick runs use small counts; runs from before goals were recorded have none to count.
    .filter((r) => !r.quick && r.startedAt >= since && r.table.some((row) => (row.goals ?? []).length > 0));
  if (runs.length === 0) {
    console.log(`no saved runs${since ? ` since ${since}` : ''} in ${RESULTS}`);
    return;
  }

  const ran = (r: SavedRun) => r.scenarios.map((s) => s.name);
  const partial = (r: SavedRun) => GOAL_SCENARIOS.some((name) => !ran(r).includes(name));
  const full = runs.filter((r) => !partial(r)).length;
  console.log(`${runs.length} runs (${full} full)${since ? ` since ${since}` : ''}, ${runs[0]!.startedAt} to ${runs[runs.length - 1]!.startedAt}\n`);
  console.log('| run (UTC) | machine | commit | scenarios | goals met | missed |');
  console.log('|---|---|---|---|---:|---|');
  for (const r of runs) {
    const goals = r.table.flatMap((row) => (row.goals ?? []).map((g) => ({ row, g })));
    const missed = goals.filter(({ g }) => g.pass === false).map(({ row, g }) => {
      const v = judged(row, g.text);
      return `${row.figure} ${g.text}${v ? ` (${fmt(v.value, v.unit)})` : ''}`;
    });
    const met = goals.filter(({ g }) => g.pass === true).length;
    const scenarios = partial(r) ? ran(r).join(', ') : 'all';
    console.log(`| ${r.startedAt} | ${r.machine.cpuModel} | ${r.commit} | ${scenarios} | ${met} of ${goals.length} | ${missed.join('; ') || '-'} |`);
  }

  // Per machine and goal: runs that met it, and the judged figure's spread.
  const tally = new Map<string, { met: number; runs: number; values: number[]; unit: string }>();
  for (const r of runs) {
    for (const row of r.table) {
      for (const g of row.goals ?? []) {
        if (g.pass === null) continue;
        const key = `${r.machine.cpuModel}\u0000${row.figure}: ${g.text}`;
        const t = tally.get(key) ?? { met: 0, runs: 0, values: [], unit: '' };
        t.runs++;
        if (g.pass) t.met++;
        const v = judged(row, g.text);
        if (v) {
          t.values.push(v.value);
          t.unit = v.unit;
        }
        tally.set(key, t);
      }
    }
  }
  console.log('\n| machine | goal | runs met | lowest | median | highest |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const [key, t] of tally) {
    const [machine, goal] = key.split('\u0000');
    const sorted = [...t.values].sort((a, b) => a - b);
    const spread = sorted.length ? [sorted[0]!, percentile(sorted, 50), sorted[sorted.length - 1]!].map((v) => fmt(v, t.unit)) : ['-', '-', '-'];
    console.log(`| ${machine} | ${goal} | ${t.met} of ${t.runs} | ${spread.join(' | ')} |`);
  }
}

main();
