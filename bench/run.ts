// `npm run bench`: starts Clicker, the baseline relay and (when it can be
// installed) nginx with nchan on loopback, runs each scenario against all of
// them, prints one table with issue 8's goals marked and saves everything as
// JSON in bench/results/. Figures are only comparable within one run (the
// machine is shared and noisy), which is why the peers run beside Clicker
// every time and the table leads with the ratios.
//
//   npm run bench                      everything
//   npm run bench -- --only latency    some scenarios (comma-separated names)
//   npm run bench -- --skip fanout10k
//   npm run bench -- --only fanout3    3 instances on a private Redis vs 1
//   npm run bench -- --quick           smaller counts, for trying the bench itself
//   npm run bench -- --no-nchan        leave nginx + nchan out
//
// A missed goal never fails the run; a scenario that breaks (a failed
// connection, a lost delivery, a crash) does, after the table is printed.
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { round } from './lib/stats';
import { goalText, nchanRatioOf, renderTable, ratioOf } from './lib/table';
import { StartError } from './lib/children';
import { ensureNchan, startNchan } from './lib/nchan';
import { BENCH_CLICKER_ENV, SERVER_FD_LIMIT, startClicker, startRelayProcess, type Launcher, type Target, type TargetName } from './lib/targets';
import type { BaseContext, Json, Row, Scenario, ScenarioResult } from './lib/scenario';
import { CAPACITY_DEFAULTS, capacityScenario } from './scenarios/capacity';
import { FANOUT_DEFAULTS, fanOutScenario } from './scenarios/fanout';
import { FANOUT3_DEFAULTS, fanOut3Scenario, type ClickerLauncher } from './scenarios/fanout3';
import { LATENCY_DEFAULTS, latencyScenario } from './scenarios/latency';
import { MEMORY_DEFAULTS, memoryScenario } from './scenarios/memory';
import { sizesScenario } from './scenarios/sizes';
import { TAP_DEFAULTS, tapScenario } from './scenarios/tap';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The run gives up here, whatever is still going; a scenario's own waits are far shorter. */
const HARD_LIMIT_MS = 7.5 * 60_000;
/**
 * A scenario is skipped ("out of time") when, at its usual pace, it would end
 * past this point; a normal run takes about four minutes, so on a busy
 * machine the last ones give way and the whole stays near six minutes.
 */
const SOFT_LIMIT_MS = 6 * 60_000;
/** Seconds each scenario usually takes on this 2-core machine with some other load (from runs of the full bench). */
const USUAL_SECONDS: Readonly<Record<string, number>> = {
  sizes: 1,
  latency: 5,
  memory: 20,
  tap: 35,
  fanout: 40,
  fanout10k: 60,
  capacity: 95,
  fanout3: 40,
};

/** Scenarios whose subscribers live in worker processes (lib/pool.ts). */
const POOLED = new Set(['fanout', 'fanout10k', 'memory', 'capacity', 'fanout3']);

const USAGE = 'usage: node --import tsx bench/run.ts [--only a,b] [--skip a,b] [--quick] [--no-nchan]';

function parseCli(): { only: Set<string> | null; skip: Set<string>; quick: boolean; nchan: boolean } {
  const list = (v: string | undefined) => new Set((v ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  try {
    const { values } = parseArgs({
      options: {
        only: { type: 'string' },
        skip: { type: 'string' },
        quick: { type: 'boolean' },
        'no-nchan': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return {
      only: values.only === undefined ? null : list(values.only),
      skip: list(values.skip),
      quick: values.quick === true,
      nchan: values['no-nchan'] !== true,
    };
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

/** An open-files limit of this process (soft, or hard with -H); the subscriber workers raise theirs to the hard one. */
function fdLimit(hard = false): number {
  try {
    return Number(execFileSync('/bin/sh', ['-c', hard ? 'ulimit -Hn' : 'ulimit -n'], { encoding: 'utf8' }).trim());
  } catch {
    return Number.NaN;
  }
}

/** Share of the last 10 s in which some task waited for a CPU (Linux PSI); other work on a shared machine shows here. */
async function cpuPressure(): Promise<number | null> {
  try {
    const text = await readFile('/proc/pressure/cpu', 'utf8');
    const m = /^some avg10=([\d.]+)/m.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function gitHead(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

interface ScenarioRecord {
  name: string;
  description: string;
  ok: boolean;
  seconds: number;
  error?: string;
  data?: Json;
}

async function main(): Promise<number> {
  const cli = parseCli();
  const log = (line: string) => console.log(`bench: ${line}`);
  const quick = cli.quick;
  const softFdLimit = fdLimit();
  // Workers raise their own limit to the hard one: each holds at most `perWorker` subscribers.
  const workerFdLimit = Math.min(SERVER_FD_LIMIT, fdLimit(true) || SERVER_FD_LIMIT);
  // Every bench subscriber comes from 127.0.0.1, which the per-address cap is meant to
  // stop, and the capacity run puts 19,000 on one channel.
  /** A fresh Clicker for fanout3: one of the instances sharing its private Redis, or (undefined) the in-memory one beside them. */
  const launchClickerOn: ClickerLauncher = (redisUrl) =>
    startClicker({ rootDir: ROOT, fdLimit: SERVER_FD_LIMIT, env: { ...BENCH_CLICKER_ENV, ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }) } });
  const all: Scenario[] = [
    sizesScenario,
    latencyScenario(quick ? { ...LATENCY_DEFAULTS, warmup: 20, count: 200 } : LATENCY_DEFAULTS),
    // Memory runs on fresh servers, so its place in the list changes nothing but whether a slow run reaches it.
    memoryScenario(quick ? { ...MEMORY_DEFAULTS, subscribers: 500, warmup: 50 } : MEMORY_DEFAULTS),
    tapScenario(quick ? { ...TAP_DEFAULTS, warmup: 1, pairs: 5 } : TAP_DEFAULTS),
    fanOutScenario('fanout', quick ? { ...FANOUT_DEFAULTS, subscribers: 500, commands: 10, block: 5 } : FANOUT_DEFAULTS),
    fanOutScenario(
      'fanout10k',
      quick ? { ...FANOUT_DEFAULTS, subscribers: 1_000, commands: 10, block: 5, perWorker: 500 } : { ...FANOUT_DEFAULTS, subscribers: 10_000 },
    ),
    capacityScenario(quick ? { ...CAPACITY_DEFAULTS, subscribers: 2_000, perWorker: 700, holdMs: 200 } : CAPACITY_DEFAULTS),
    // Last: no goal hangs on it, so on a slow run it is the one that gives way.
    fanOut3Scenario(
      { launch: launchClickerOn, workerFdLimit },
      quick ? { ...FANOUT3_DEFAULTS, subscribers: 600, commands: 10, block: 5, warmup: 1 } : FANOUT3_DEFAULTS,
    ),
  ];
  const unknown = [...(cli.only ?? []), ...cli.skip].filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`bench: no scenario named ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
    return 2;
  }
  const selected = all.filter((s) => (cli.only === null || cli.only.has(s.name)) && !cli.skip.has(s.name));
  const needsServers = selected.some((s) => s.needsServers);

  // Found (or installed, once per machine) before the clock starts, like the build: setup, not measurement.
  // Each apt-get step has its own timeout, so this is bounded too.
  let nchanNote: string | undefined;
  let nchanFound: { nginx: string; config: string } | undefined;
  if (needsServers && !cli.nchan) nchanNote = 'left out (--no-nchan)';
  else if (needsServers) {
    const found = await ensureNchan(ROOT, log);
    if (found.ok) nchanFound = found;
    else nchanNote = `skipped: ${found.why}`;
  }

  const started = Date.now();
  const records: ScenarioRecord[] = [];
  const rows: Row[] = [];
  const notes: string[] = [];
  /** The scenario running now, for the record if the hard limit strikes. */
  let current: { scenario: Scenario; t0: number } | undefined;
  let finishing: Promise<number> | undefined;
  const finish = () => (finishing ??= writeReport());

  // Unbounded waits are the one way a bench could hang; this ends the run regardless, with the
  // table of what was measured so far (children die with the process).
  setTimeout(() => {
    console.error(`bench: still running after ${HARD_LIMIT_MS / 60_000} minutes; giving up`);
    if (current) {
      const { scenario, t0 } = current;
      records.push({ name: scenario.name, description: scenario.description, ok: false, seconds: (Date.now() - t0) / 1000, error: 'stopped at the hard time limit' });
    }
    void finish().finally(() => process.exit(1));
    // Writing the report must not become the next hang.
    setTimeout(() => process.exit(1), 10_000).unref();
  }, HARD_LIMIT_MS).unref();
  const skip = (s: Scenario, why: string) => {
    log(`${s.name}: skipped: ${why}`);
    records.push({ name: s.name, description: s.description, ok: false, seconds: 0, error: `skipped: ${why}` });
  };

  const pressureBefore = await cpuPressure();
  const loadBefore = os.loadavg().map((l) => round(l, 2));
  const launchClicker: Launcher = () => launchClickerOn(undefined);
  // The fresh servers of `memory` and `capacity` skip the startup warm-up: its
  // garbage grows the heap before the first reading, and subscribers that
  // move into room made beforehand look almost free (memory per idle
  // subscriber read 3.9 KiB with it, against 8 KiB without).
  const launchFreshClicker: Launcher = () => startClicker({ rootDir: ROOT, fdLimit: SERVER_FD_LIMIT, env: { ...BENCH_CLICKER_ENV, WARMUP_COMMANDS: '0' } });
  const launchRelay: Launcher = () => startRelayProcess({ rootDir: ROOT, fdLimit: SERVER_FD_LIMIT });
  const launch: Partial<Record<TargetName, Launcher>> = { clicker: launchFreshClicker, relay: launchRelay };
  let clicker: Target | undefined;
  let relay: Target | undefined;
  let nchan: Target | undefined;
  try {
    let startFailure: string | undefined;
    if (needsServers) {
      const found = nchanFound;
      if (found) launch.nchan = () => startNchan({ nginx: found.nginx, config: found.config, fdLimit: SERVER_FD_LIMIT });
      const [c, r, n] = await Promise.allSettled([
        launchClicker(),
        launchRelay(),
        launch.nchan ? launch.nchan() : Promise.resolve(undefined),
      ] as const);
      if (c.status === 'fulfilled') clicker = c.value;
      if (r.status === 'fulfilled') relay = r.value;
      for (const failed of [c, r]) {
        if (failed.status !== 'rejected') continue;
        const err: unknown = failed.reason;
        startFailure = err instanceof Error ? err.message : String(err);
        log(startFailure);
        // The server's own words say why (a missing build, a bad flag) better than any guess here.
        if (err instanceof StartError && err.output.trim()) console.log(err.output.trim().split('\n').slice(-15).map((l) => `    ${l}`).join('\n'));
      }
      // nchan is a yardstick, not the subject: without it the run goes on, with a note.
      if (n.status === 'fulfilled') nchan = n.value;
      else {
        const err: unknown = n.reason;
        nchanNote = `skipped: nginx + nchan did not start: ${err instanceof Error ? err.message : String(err)}`;
        delete launch.nchan;
      }
      if (nchanNote) log(`nchan: ${nchanNote}`);
      if (clicker && relay) {
        log(
          `clicker on ${clicker.baseUrl} (pid ${clicker.pid}), relay on ${relay.baseUrl} (pid ${relay.pid})` +
            `${nchan ? `, nchan on ${nchan.baseUrl} (pid ${nchan.pid})` : ''}`,
        );
      }
    }

    for (const scenario of selected) {
      const usualMs = (USUAL_SECONDS[scenario.name] ?? 30) * 1000 * (quick ? 0.2 : 1);
      if (Date.now() + usualMs > started + SOFT_LIMIT_MS) {
        skip(scenario, `out of time (it usually takes ${Math.round(usualMs / 1000)} s; run it alone with --only ${scenario.name})`);
        continue;
      }
      const unavailable = scenario.unavailable?.();
      if (unavailable !== undefined) {
        skip(scenario, unavailable);
        continue;
      }
      if (scenario.needsServers && startFailure !== undefined) {
        log(`${scenario.name}: FAILED: ${startFailure}`);
        records.push({ name: scenario.name, description: scenario.description, ok: false, seconds: 0, error: startFailure });
        continue;
      }
      if (POOLED.has(scenario.name) && !(workerFdLimit > FANOUT_DEFAULTS.perWorker + 500)) {
        skip(scenario, `a worker may open only ${workerFdLimit} files, too few for ${FANOUT_DEFAULTS.perWorker} subscribers; raise \`ulimit -Hn\``);
        continue;
      }
      // Loops inside a scenario stop a little before the hard limit, so its table still prints.
      const base: BaseContext = { rootDir: ROOT, log, deadline: started + HARD_LIMIT_MS - 45_000 };
      log(`${scenario.name}: ${scenario.description}`);
      const t0 = Date.now();
      current = { scenario, t0 };
      try {
        let result: ScenarioResult;
        if (!scenario.needsServers) result = await scenario.run(base);
        else if (clicker && relay) result = await scenario.run({ ...base, clicker, relay, nchan, launch, workerFdLimit });
        else throw new Error('the servers were not started');
        rows.push(...result.rows);
        const problems = result.problems ?? [];
        for (const p of problems) log(`${scenario.name}: BROKEN: ${p}`);
        records.push({
          name: scenario.name,
          description: scenario.description,
          ok: problems.length === 0,
          seconds: (Date.now() - t0) / 1000,
          ...(problems.length ? { error: problems.join('; ') } : {}),
          data: result.data,
        });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`${scenario.name}: FAILED: ${message}`);
        records.push({ name: scenario.name, description: scenario.description, ok: false, seconds: (Date.now() - t0) / 1000, error: message });
      }
      current = undefined;
    }
  } finally {
    await Promise.all([clicker?.stop(), relay?.stop(), nchan?.stop()]);
  }
  return finish();

  /** Prints the table and writes the results file; returns the exit status. */
  async function writeReport(): Promise<number> {
    const failed = records.filter((r) => !r.ok);
    const goals = rows.flatMap((r) => (r.goals ?? []).map((g) => ({ figure: r.figure, ...g })));
    if (nchanNote) notes.push(`nchan: ${nchanNote}`);
    const judged = goals.filter((g) => g.pass !== null);
    console.log('');
    console.log(renderTable(rows, { nchan: nchan !== undefined }));
    console.log(`\ngoals met: ${judged.filter((g) => g.pass).length} of ${judged.length}${judged.length < goals.length ? ` (${goals.length - judged.length} not judged)` : ''}`);
    for (const g of goals.filter((x) => x.pass === false)) console.log(`  missed: ${g.figure}: ${g.text}`);
    for (const n of notes) console.log(`  ${n}`);
    for (const f of failed) console.log(`  ${f.name}: ${f.error}`);

    const stamp = new Date(started).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const dir = path.join(ROOT, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    // Colons are not allowed in Windows file names, and these files are meant to be committed.
    const file = path.join(dir, `${stamp.replace(/:/g, '-')}.json`);
    const cpus = os.cpus();
    const num = (v: number | string | null | undefined) => (v === undefined ? null : typeof v === 'number' ? round(v) : v);
    const report = {
      startedAt: stamp,
      seconds: round((Date.now() - started) / 1000, 1),
      commit: gitHead(),
      quick,
      nchan: nchan ? 'measured' : (nchanNote ?? 'not needed'),
      machine: {
        node: process.version,
        platform: `${os.platform()} ${os.release()}`,
        cpus: cpus.length,
        cpuModel: cpus[0]?.model ?? null,
        memoryGiB: round(os.totalmem() / 2 ** 30, 1),
        loadavgBefore: loadBefore,
        loadavgAfter: os.loadavg().map((l) => round(l, 2)),
        cpuPressurePctBefore: pressureBefore,
        cpuPressurePctAfter: await cpuPressure(),
        benchFdLimit: softFdLimit,
        workerFdLimit,
      },
      table: rows.map((r): Json => {
        const ratio = ratioOf(r);
        const ratioNchan = nchanRatioOf(r);
        return {
          figure: r.figure,
          unit: r.unit,
          clicker: num(r.clicker),
          relay: num(r.relay),
          nchan: num(r.nchan),
          ratio: ratio === null ? null : round(ratio),
          ratioNchan: ratioNchan === null ? null : round(ratioNchan),
          goals: (r.goals ?? []).map((g) => ({ text: g.text, pass: g.pass })),
          // A row group of its own (fanout3): what `clicker`, `relay` and `ratio` hold there.
          ...(r.columns ? { columns: { ...r.columns } } : {}),
        };
      }),
      goals: goals.map((g) => `${g.figure}: ${goalText(g)}`),
      scenarios: records,
    };
    await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nbench: results saved to ${path.relative(process.cwd(), file)} (${report.seconds} s)`);
    return failed.some((f) => !f.error?.startsWith('skipped')) ? 1 : 0;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
