// The shared yardstick's own harness, pointed at Clicker. `npm run bench`
// measures with a client written here; this runs the reference harness of
// ../shared/bench (ssebench, written by somebody else, with its own raw SSE
// client and its own clock) against Clicker, against the yardstick's
// hand-written node:http hub and against nginx+nchan with the yardstick's
// config, in turns, each server started fresh for each measurement. The
// scenarios are the yardstick's own (its run-suite.sh): `latency`, one
// subscriber and 2,000 sequential publishes after 100 unmeasured ones, and
// `fanout`, 5,000 subscribers on one channel and 50 publishes after 5.
// Nothing of the yardstick is copied into this project: its scripts are run
// where they are, and this file is skipped with a note when they are absent.
//
//   npm run bench:yardstick                      3 rounds of every scenario
//   npm run bench:yardstick -- --rounds 1 --only latency
//   npm run bench:yardstick -- --only latency --warmup 2000
//
// `--warmup N` replaces the yardstick's 100 unmeasured publishes: with 100,
// the run measures fresh processes (the harness's own included) still
// settling, which is the yardstick's choice; npm run bench warms every target
// with 2,000.
//
// Prints a table of medians over the rounds, with Clicker's ratios to each
// peer, and saves every harness summary in bench/results/yardstick/<UTC time>.json.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, startChild } from './lib/children';
import { JsonClient } from './lib/http';
import { ensureNchan, startNchan } from './lib/nchan';
import { percentile } from './lib/stats';
import { BENCH_CLICKER_ENV, createChannel, HOST, SERVER_FD_LIMIT, startClicker } from './lib/targets';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const YARDSTICK = process.env.YARDSTICK_DIR ?? path.resolve(ROOT, '..', 'shared', 'bench');
const SSEBENCH = path.join(YARDSTICK, 'ssebench.sh');
const NODE_HUB = path.join(YARDSTICK, 'peers', 'node-http-hub.mjs');

/** The yardstick's scenarios, with the arguments its run-suite.sh gives them. */
const SCENARIOS = {
  latency: ['-n', '1', '-c', '1', '-m', '2000', '--warmup', '100', '--mode', 'pingpong'],
  fanout: ['-n', '5000', '-c', '1', '-m', '50', '--warmup', '5', '--mode', 'pingpong'],
} as const;
type ScenarioName = keyof typeof SCENARIOS;

type ServerName = 'clicker' | 'node hub' | 'nchan';

/** A started server and how the harness reaches it. */
interface Running {
  pid: number;
  /** Harness arguments naming the server's endpoints, credentials and pids. */
  args: string[];
  stop(): Promise<void>;
}

/** The parts of ssebench's JSON summary this reads. */
interface Summary {
  lat_ms: { p50: number; p99: number };
  deliveries_per_s: number;
  deliveries: number;
  expected_deliveries: number;
  errors: number;
}

const USAGE = 'usage: node --import tsx bench/yardstick.ts [--rounds N] [--only latency,fanout] [--warmup N]';

function parseCli(): { rounds: number; only: ScenarioName[]; warmup: number | undefined } {
  let values: { rounds?: string; only?: string; warmup?: string };
  try {
    ({ values } = parseArgs({ options: { rounds: { type: 'string' }, only: { type: 'string' }, warmup: { type: 'string' } } }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.rounds !== undefined && !/^[1-9]\d*$/.test(values.rounds)) fail(USAGE);
  if (values.warmup !== undefined && !/^\d+$/.test(values.warmup)) fail(USAGE);
  let only = Object.keys(SCENARIOS) as ScenarioName[];
  if (values.only !== undefined) {
    const names = values.only.split(',');
    const unknown = names.filter((n) => !(n in SCENARIOS));
    if (unknown.length) fail(`no scenario named ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    only = names as ScenarioName[];
  }
  return { rounds: values.rounds === undefined ? 3 : Number(values.rounds), only, warmup: values.warmup === undefined ? undefined : Number(values.warmup) };
}

function fail(message: string): never {
  console.error(`yardstick: ${message}`);
  process.exit(2);
}

const log = (line: string) => console.error(`yardstick: ${line}`);

async function startClickerFor(): Promise<Running> {
  const target = await startClicker({
    rootDir: ROOT,
    fdLimit: SERVER_FD_LIMIT,
    env: BENCH_CLICKER_ENV,
  });
  const client = new JsonClient(HOST, target.port);
  try {
    const { id, deckKey } = await createChannel(client);
    const base = `${target.baseUrl}/api/channels/${id}`;
    return {
      pid: target.pid,
      // The harness finds a delivery's sequence number in the event's data: here
      // in the command id, which allows no colon (so not the default pattern).
      args: [
        '--sub', `${base}/events`,
        '--pub', `${base}/commands`,
        '--pub-header', `Authorization: Bearer ${deckKey}`,
        '--body', '{"type":"next","id":"yardstick-{seq}"}',
        '--seq-re', 'yardstick-(\\d+)',
        '--server-pid', String(target.pid),
      ],
      stop: () => target.stop(),
    };
  } catch (err) {
    await target.stop();
    throw err;
  } finally {
    client.close();
  }
}

async function startNodeHub(): Promise<Running> {
  const port = await freePort();
  const probe = new JsonClient(HOST, port);
  try {
    const child = await startChild({
      name: 'node hub',
      command: process.execPath,
      args: ['--expose-gc', NODE_HUB],
      env: { ...process.env, PORT: String(port), HOST },
      ready: async () => (await probe.get('/stats')).status === 200,
      timeoutMs: 10_000,
      fdLimit: SERVER_FD_LIMIT,
    });
    const base = `http://${HOST}:${port}`;
    return { pid: child.pid, args: ['--sub', `${base}/sub/{ch}`, '--pub', `${base}/pub/{ch}`, '--server-pid', String(child.pid)], stop: () => child.stop() };
  } finally {
    probe.close();
  }
}

async function startNchanFor(nginx: string, config: string): Promise<Running> {
  const target = await startNchan({ nginx, config, fdLimit: SERVER_FD_LIMIT });
  return {
    pid: target.pid,
    args: ['--sub', `${target.baseUrl}/sub/{ch}`, '--pub', `${target.baseUrl}/pub/{ch}`, '--server-pid', String(target.pid), '--include-children'],
    stop: () => target.stop(),
  };
}

/** One harness run; its JSON summary, or an error with the harness's last lines. */
async function runHarness(args: string[], label: string): Promise<Summary> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'clicker-yardstick-'));
  const out = path.join(dir, 'summary.json');
  try {
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(SSEBENCH, [...args, '--quiet', '--label', label, '--json-out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      child.stdout.on('data', (c: Buffer) => (text = (text + c.toString()).slice(-8_000)));
      child.stderr.on('data', (c: Buffer) => (text = (text + c.toString()).slice(-8_000)));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`${label}: ssebench exited ${code}:\n${text.slice(-2_000)}`))));
    });
    if (!existsSync(out)) throw new Error(`${label}: ssebench wrote no summary:\n${output.slice(-2_000)}`);
    return JSON.parse(await readFile(out, 'utf8')) as Summary;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The checked-out commit, for the record; 'unknown' outside a git checkout. */
function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

async function main(): Promise<void> {
  const { rounds, only, warmup } = parseCli();
  const startedAt = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  if (!existsSync(SSEBENCH) || !existsSync(NODE_HUB)) fail(`no yardstick at ${YARDSTICK} (ssebench.sh and peers/node-http-hub.mjs); set YARDSTICK_DIR`);
  const nchan = await ensureNchan(ROOT, log);
  const starters: [ServerName, () => Promise<Running>][] = [
    ['clicker', startClickerFor],
    ['node hub', startNodeHub],
  ];
  if (nchan.ok) starters.push(['nchan', () => startNchanFor(nchan.nginx, nchan.config)]);
  else log(`nchan left out: ${nchan.why}`);

  const results: { round: number; scenario: ScenarioName; server: ServerName; summary: Summary }[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const scenario of only) {
      // The servers take turns in a rotating order, so a drift of the machine's load falls on each alike.
      const order = starters.map((_, i) => starters[(i + round) % starters.length]!);
      for (const [server, start] of order) {
        const running = await start();
        try {
          // A later --warmup wins over the scenario's own: ssebench reads the last one given.
          const extra = warmup === undefined ? [] : ['--warmup', String(warmup)];
          const summary = await runHarness([...running.args, ...SCENARIOS[scenario], ...extra], `${server} ${scenario} r${round + 1}`);
          const lost = summary.expected_deliveries - summary.deliveries;
          log(`round ${round + 1} ${scenario} ${server}: p50 ${summary.lat_ms.p50} ms, p99 ${summary.lat_ms.p99} ms, ${summary.deliveries_per_s} deliveries/s, ${summary.errors} errors, ${lost} lost`);
          results.push({ round: round + 1, scenario, server, summary });
        } finally {
          await running.stop();
        }
      }
    }
  }

  const servers = starters.map(([name]) => name);
  const pick = (scenario: ScenarioName, server: ServerName, f: (s: Summary) => number) =>
    median(results.filter((r) => r.scenario === scenario && r.server === server).map((r) => f(r.summary)));
  const figures: [ScenarioName, string, (s: Summary) => number][] = [
    ['latency', 'latency p50 (ms)', (s) => s.lat_ms.p50],
    ['latency', 'latency p99 (ms)', (s) => s.lat_ms.p99],
    ['fanout', 'fan-out 5k: deliveries/s', (s) => s.deliveries_per_s],
    ['fanout', 'fan-out 5k: delivery p50 (ms)', (s) => s.lat_ms.p50],
    ['fanout', 'fan-out 5k: delivery p99 (ms)', (s) => s.lat_ms.p99],
  ];
  const peers = servers.filter((s) => s !== 'clicker');
  const warm = warmup === undefined ? "the yardstick's own warm-up" : `${warmup} unmeasured publishes`;
  console.log(`\nThe yardstick's ssebench, medians of ${rounds} round${rounds === 1 ? '' : 's'} (each server started fresh for each run; ${warm}):\n`);
  console.log(`| figure | ${servers.join(' | ')} | ${peers.map((p) => `clicker/${p}`).join(' | ')} |`);
  console.log(`|---|${servers.map(() => '---:').join('|')}|${peers.map(() => '---:').join('|')}|`);
  for (const [scenario, name, f] of figures) {
    if (!only.includes(scenario)) continue;
    const values = servers.map((s) => pick(scenario, s, f));
    const clicker = values[0]!;
    const ratios = peers.map((p) => `${(clicker / pick(scenario, p, f)).toFixed(2)}x`);
    console.log(`| ${name} | ${values.map((v) => (v >= 1000 ? Math.round(v).toLocaleString('en-US') : String(v))).join(' | ')} | ${ratios.join(' | ')} |`);
  }
  const broken = results.filter((r) => r.summary.errors > 0 || r.summary.deliveries < r.summary.expected_deliveries);
  console.log(`\nerrors or lost deliveries: ${broken.length === 0 ? 'none' : broken.map((r) => `${r.server} ${r.scenario} round ${r.round}`).join(', ')}`);

  const dir = path.join(ROOT, 'bench', 'results', 'yardstick');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${startedAt.replace(/:/g, '-')}.json`);
  const record = {
    startedAt,
    commit: gitCommit(),
    // Relative to the project, so the record names no path of this machine.
    yardstick: path.relative(ROOT, YARDSTICK),
    rounds,
    warmup: warmup ?? 'the yardstick scenario default',
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    results,
  };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  console.log(`saved to ${path.relative(ROOT, file)}`);
  // Any server that broke (an error, a lost delivery) fails the run, as in npm run bench.
  process.exitCode = broken.length === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
