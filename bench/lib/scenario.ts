// What a scenario is: something that runs against the started targets and
// returns rows for the printed table plus a JSON-able record for the results
// file. run.ts holds the list; a new scenario is one more entry there.
import type { Launcher, Target, TargetName } from './targets';

export type Cell = number | string | null;

/** One of issue 8's targets, judged by the scenario that measured the figure. */
export interface Goal {
  /** What is asked, e.g. "<= 1.1x relay". */
  text: string;
  /** null when it could not be judged (a peer missing, a figure not a number). */
  pass: boolean | null;
}

export interface Row {
  figure: string;
  clicker: Cell;
  relay: Cell;
  /** Absent or null when nchan is not part of the run, or the figure has no nchan side. */
  nchan?: Cell;
  /** Unit shown after each number, e.g. "ms". */
  unit: string;
  /** clicker / relay when both are numbers; set by the table code unless given. */
  ratio?: number | null;
  goals?: Goal[];
  /**
   * A row group whose columns hold something else than Clicker beside its
   * peers (fanout3: three instances beside one): the table prints a heading
   * row with these names before the group, and the JSON carries them.
   */
  columns?: ColumnNames;
}

/** Headings for a row group: its title (in the figure column) and what the clicker, relay and ratio columns hold. */
export interface ColumnNames {
  group: string;
  clicker: string;
  relay: string;
  ratio: string;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ScenarioResult {
  rows: Row[];
  data: Json;
  /**
   * What broke while measuring (failed connections, lost deliveries): the
   * rows still print, but the run exits non-zero. A missed goal is not a problem.
   */
  problems?: string[];
}

export interface BaseContext {
  rootDir: string;
  log: (line: string) => void;
  /** The bench's own deadline (Date.now() scale); a scenario bounds its waits so that the whole run ends in time. */
  deadline: number;
}

export interface Context extends BaseContext {
  clicker: Target;
  relay: Target;
  /** nginx + nchan, when it could be installed and started. */
  nchan: Target | undefined;
  /** Fresh instances of each target, for a scenario that must start from an untouched process (memory, capacity). */
  launch: Partial<Record<TargetName, Launcher>>;
  /** Open files a subscriber worker process may use. */
  workerFdLimit: number;
}

/** The running targets of a context, Clicker first. */
export function targetsOf(ctx: Context): Target[] {
  return ctx.nchan ? [ctx.clicker, ctx.relay, ctx.nchan] : [ctx.clicker, ctx.relay];
}

/** A goal on a ratio: pass when `value` is on the right side of `limit`, null when it cannot be judged. */
export function judge(value: number | null | undefined, op: '<=' | '>=', limit: number): boolean | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  return op === '<=' ? value <= limit : value >= limit;
}

/** A scenario either measures the running servers or reads something that needs none (so none are started for it alone). */
export type Scenario = (
  | { name: string; description: string; needsServers: true; run(ctx: Context): Promise<ScenarioResult> }
  | { name: string; description: string; needsServers: false; run(ctx: BaseContext): Promise<ScenarioResult> }
) & {
  /**
   * Why the scenario cannot run on this machine (a program it needs is
   * missing), or undefined; checked just before it would start, and the run
   * skips it with this as the note.
   */
  unavailable?: () => string | undefined;
};

/** Rejects after `ms` with a message naming what was awaited. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
