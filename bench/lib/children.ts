// Starting and stopping the servers under test. Every child is registered the
// moment it is spawned and killed when the bench exits for any reason (normal
// end, an exception, Ctrl-C), so a failed run never leaves a server holding
// thousands of sockets or a port on the machine.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) {
    // SIGKILL: on the way out there is no time left to wait for a graceful stop.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  live.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping the servers\n`);
      killAll();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

export interface StartOptions {
  /** Short name for messages, e.g. "clicker". */
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Matched against everything the child has printed on stdout; the child is ready at the first match. */
  ready: RegExp;
  timeoutMs: number;
  /**
   * Open-files limit for the child. A shell raises it and then execs the
   * command, so the pid we hold is still the server's own (for /proc readings
   * and for kill). Capped at the hard limit, which an unprivileged process cannot pass.
   */
  fdLimit?: number;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** The `ready` match, for reading a port or URL out of it. */
  readonly match: RegExpExecArray;
  /** Everything printed so far, for diagnostics. */
  output(): string;
  /** SIGTERM, then SIGKILL if the child has not exited within `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Thrown when a child exits or times out before it is ready; carries its output. */
export class StartError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

const MAX_KEPT_OUTPUT = 64 * 1024;

export function startChild(opts: StartOptions): Promise<Child> {
  hookExit();
  let command = opts.command;
  let args = [...opts.args];
  if (opts.fdLimit !== undefined) {
    // `exec "$0" "$@"` keeps the argument vector intact, with no quoting to get wrong.
    const script = `ulimit -n ${opts.fdLimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
    args = ['-c', script, command, ...args];
    command = '/bin/sh';
  }
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);

  let stdout = '';
  let stderr = '';
  const keep = (s: string) => (s.length > MAX_KEPT_OUTPUT ? s.slice(-MAX_KEPT_OUTPUT) : s);
  const output = () => `${stdout}${stderr ? `\n[stderr]\n${stderr}` : ''}`;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
  });

  const stop = async (graceMs = 3_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return new Promise<Child>((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stop(500);
      reject(new StartError(`${opts.name}: ${why}`, output()));
    };
    const timer = setTimeout(() => fail(`not ready after ${opts.timeoutMs} ms`), opts.timeoutMs);

    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      stdout = keep(stdout + text);
      if (settled) return;
      const match = opts.ready.exec(stdout);
      if (!match) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid === undefined) return reject(new StartError(`${opts.name}: no pid`, output()));
      resolve({ name: opts.name, pid: child.pid, match, output, stop });
    });
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      stderr = keep(stderr + text);
    });
    child.once('error', (err) => fail(`cannot start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited before it was ready (${signal ?? `code ${code}`})`));
  });
}

/**
 * A port that was free a moment ago on 127.0.0.1. Racy by nature (another
 * process may take it before the child binds), so callers retry on EADDRINUSE.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = addr && typeof addr === 'object' ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** Resident set size of a process in KiB, from /proc (Linux only; NaN elsewhere). */
export async function rssKiB(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds a process has used (user + system), from /proc/PID/stat; NaN
 * off Linux. With the client's own process.cpuUsage() it shows which side of
 * a fan-out was the bottleneck on a small machine.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name in field 2 may hold spaces; the fields after its closing parenthesis do not.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;
