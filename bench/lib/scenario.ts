// What a scenario is: something that runs against the started targets and
// returns rows for the printed table plus a JSON-able record for the results
// file. run.ts holds the list; a new scenario is one more entry there.
import type { Target } from './targets';

export interface Row {
  figure: string;
  clicker: number | string | null;
  relay: number | string | null;
  /** Unit shown after each number, e.g. "ms". */
  unit: string;
  /** clicker / relay when both are numbers; set by the table code unless given. */
  ratio?: number | null;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ScenarioResult {
  rows: Row[];
  data: Json;
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
}

/** A scenario either measures the running servers or reads something that needs none (so none are started for it alone). */
export type Scenario =
  | { name: string; description: string; needsServers: true; run(ctx: Context): Promise<ScenarioResult> }
  | { name: string; description: string; needsServers: false; run(ctx: BaseContext): Promise<ScenarioResult> };

/** Rejects after `ms` with a message naming what was awaited. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
