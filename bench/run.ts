// `npm run bench`: starts Clicker and the baseline relay on loopback, runs each
// scenario against both, prints one table and saves everything as JSON in
// bench/results/. Figures are only comparable within one run (the machine is
// shared and noisy), which is why the baseline runs beside Clicker every time
// and the table leads with their ratio.
//
//   npm run bench                      everything
//   npm run bench -- --only latency    some scenarios (comma-separated names)
//   npm run bench -- --skip fanout
//   npm run bench -- --quick           smaller counts, for trying the bench itself
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { round } from './lib/stats';
import { renderTable, ratioOf } from './lib/table';
import { StartError } from './lib/children';
import { startClicker, startRelayProcess, type Target } from './lib/targets';
import type { BaseContext, Json, Row, Scenario, ScenarioResult } from './lib/scenario';
import { FANOUT_DEFAULTS, fanOutScenario } from './scenarios/fanout';
import { LATENCY_DEFAULTS, latencyScenario } from './scenarios/latency';
import { sizesScenario } from './scenarios/sizes';
import { TAP_DEFAULTS, tapScenario } from './scenarios/tap';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The run gives up here, whatever is still going; a scenario's own waits are far shorter. */
const HARD_LIMIT_MS = 5 * 60_000;
/** Open files each server may use: the machine's hard limit, above any fan-out we run. */
const SERVER_FD_LIMIT = 20_000;

const USAGE = 'usage: node --import tsx bench/run.ts [--only a,b] [--skip a,b] [--quick]';

function parseCli(): { only: Set<string> | null; skip: Set<string>; quick: boolean } {
  const list = (v: string | undefined) => new Set((v ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  try {
    const { values } = parseArgs({
      options: {
        only: { type: 'string' },
        skip: { type: 'string' },
        quick: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return { only: values.only === undefined ? null : list(values.only), skip: list(values.skip), quick: values.quick === true };
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

/** The open-files limit this process runs under (the subscribers of a fan-out live here). */
function ownFdLimit(): number {
  try {
    return Number(execFileSync('/bin/sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim());
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
  const started = Date.now();
  const deadline = started + HARD_LIMIT_MS - 30_000;
  const log = (line: string) => console.log(`bench: ${line}`);

  // Unbounded waits are the one way a bench could hang; this ends the run regardless.
  setTimeout(() => {
    console.error(`bench: still running after ${HARD_LIMIT_MS / 60_000} minutes; giving up`);
    process.exit(1);
  }, HARD_LIMIT_MS).unref();

  const quick = cli.quick;
  const fdLimit = ownFdLimit();
  const fanOpts = { ...FANOUT_DEFAULTS, ...(quick ? { subscribers: 500, commands: 10, block: 5 } : {}), fdLimit };
  const all: Scenario[] = [
    sizesScenario,
    latencyScenario(quick ? { ...LATENCY_DEFAULTS, warmup: 20, count: 200 } : LATENCY_DEFAULTS),
    tapScenario(quick ? { ...TAP_DEFAULTS, warmup: 1, pairs: 5 } : TAP_DEFAULTS),
    fanOutScenario(fanOpts),
  ];
  const unknown = [...(cli.only ?? []), ...cli.skip].filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`bench: no scenario named ${unknown.join(', ')}; known: ${all.map((s) => s.name).join(', ')}`);
    return 2;
  }
  const selected = all.filter((s) => (cli.only === null || cli.only.has(s.name)) && !cli.skip.has(s.name));

  const records: ScenarioRecord[] = [];
  const rows: Row[] = [];
  const skip = (s: Scenario, why: string) => {
    log(`${s.name}: skipped: ${why}`);
    records.push({ name: s.name, description: s.description, ok: false, seconds: 0, error: `skipped: ${why}` });
  };

  const pressureBefore = await cpuPressure();
  const loadBefore = os.loadavg().map((l) => round(l, 2));
  let clicker: Target | undefined;
  let relay: Target | undefined;
  try {
    let startFailure: string | undefined;
    if (selected.some((s) => s.needsServers)) {
      const starting = [
        startClicker({
          rootDir: ROOT,
          fdLimit: SERVER_FD_LIMIT,
          // The fan-out's subscribers all come from 127.0.0.1, which the per-address cap is meant to stop.
          env: { MAX_SUBSCRIBERS_PER_IP: String(SERVER_FD_LIMIT) },
        }),
        startRelayProcess({ rootDir: ROOT, fdLimit: SERVER_FD_LIMIT }),
      ] as const;
      const [c, r] = await Promise.allSettled(starting);
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
      if (clicker && relay) log(`clicker on ${clicker.baseUrl} (pid ${clicker.pid}), relay on ${relay.baseUrl} (pid ${relay.pid})`);
    }

    for (const scenario of selected) {
      if (Date.now() > deadline) {
        skip(scenario, 'out of time');
        continue;
      }
      if (scenario.needsServers && startFailure !== undefined) {
        log(`${scenario.name}: FAILED: ${startFailure}`);
        records.push({ name: scenario.name, description: scenario.description, ok: false, seconds: 0, error: startFailure });
        continue;
      }
      if (scenario.name === 'fanout' && !(fdLimit > fanOpts.subscribers + 500)) {
        skip(scenario, `this process may open ${fdLimit} files, too few for ${fanOpts.subscribers} subscribers; raise \`ulimit -n\``);
        continue;
      }
      const base: BaseContext = { rootDir: ROOT, log, deadline };
      log(`${scenario.name}: ${scenario.description}`);
      const t0 = Date.now();
      try {
        let result: ScenarioResult;
        if (!scenario.needsServers) result = await scenario.run(base);
        else if (clicker && relay) result = await scenario.run({ ...base, clicker, relay });
        else throw new Error('the servers were not started');
        rows.push(...result.rows);
        records.push({ name: scenario.name, description: scenario.description, ok: true, seconds: (Date.now() - t0) / 1000, data: result.data });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`${scenario.name}: FAILED: ${message}`);
        records.push({ name: scenario.name, description: scenario.description, ok: false, seconds: (Date.now() - t0) / 1000, error: message });
      }
    }
  } finally {
    await Promise.all([clicker?.stop(), relay?.stop()]);
  }

  const failed = records.filter((r) => !r.ok);
  console.log('');
  console.log(renderTable(rows));
  for (const f of failed) console.log(`  ${f.name}: ${f.error}`);

  const stamp = new Date(started).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const dir = path.join(ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  // Colons are not allowed in Windows file names, and these files are meant to be committed.
  const file = path.join(dir, `${stamp.replace(/:/g, '-')}.json`);
  const cpus = os.cpus();
  const report = {
    startedAt: stamp,
    seconds: round((Date.now() - started) / 1000, 1),
    commit: gitHead(),
    quick,
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
      benchFdLimit: fdLimit,
    },
    table: rows.map((r) => {
      const ratio = ratioOf(r);
      const num = (v: number | string | null) => (typeof v === 'number' ? round(v) : v);
      return { figure: r.figure, unit: r.unit, clicker: num(r.clicker), relay: num(r.relay), ratio: ratio === null ? null : round(ratio) };
    }),
    scenarios: records,
  };
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nbench: results saved to ${path.relative(process.cwd(), file)} (${report.seconds} s)`);
  return failed.some((f) => !f.error?.startsWith('skipped')) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
