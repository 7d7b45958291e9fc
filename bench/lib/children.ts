// Starting and stopping the processes of a run: the servers under test and
// the bench's own subscriber workers. Every child is registered the moment it
// is spawned and killed when the bench exits for any reason (normal end, an
// exception, Ctrl-C, the hard time limit), so a failed run never leaves a
// server holding thousands of sockets or a port on the machine.
import { spawn, type ChildProcess, type Serializable } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';

/** Each live child with the way to kill it: its own pid, or its whole process group (nginx and its workers). */
const live = new Map<ChildProcess, (signal: NodeJS.Signals) => void>();

/** Synchronous clean-ups for the way out (temporary folders), run after the children are killed. */
const cleanups = new Set<() => void>();

function killAll(): void {
  for (const [child, kill] of live) {
    // SIGKILL: on the way out there is no time left to wait for a graceful stop.
    if (child.exitCode === null && child.signalCode === null) kill('SIGKILL');
  }
  live.clear();
  for (const clean of cleanups) {
    try {
      clean();
    } catch {
      // Best effort: the process is ending either way.
    }
  }
  cleanups.clear();
}

/** Runs `clean` (synchronous) if the bench exits before the returned function is called. */
export function atExit(clean: () => void): () => void {
  hookExit();
  cleanups.add(clean);
  return () => cleanups.delete(clean);
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

/** Kills a process group, ignoring one that is already gone. */
function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: every member has exited already.
  }
}

/** `/bin/sh` runs `command args` with the open-files limit raised, as the same pid (exec). */
function withFdLimit(command: string, args: readonly string[], fdLimit: number | undefined): [string, string[]] {
  if (fdLimit === undefined) return [command, [...args]];
  // `exec "$0" "$@"` keeps the argument vector intact, with no quoting to get wrong.
  const script = `ulimit -n ${fdLimit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`;
  return ['/bin/sh', ['-c', script, command, ...args]];
}

export interface StartOptions {
  /** Short name for messages, e.g. "clicker". */
  name: string;
  command: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * When the child is ready. A RegExp is matched against everything it has
   * printed on stdout (ready at the first match); a function is polled every
   * 50 ms, for a server that prints nothing when it is up (nginx).
   */
  ready: RegExp | (() => Promise<boolean>);
  timeoutMs: number;
  /**
   * Open-files limit for the child. A shell raises it and then execs the
   * command, so the pid we hold is still the server's own (for /proc readings
   * and for kill). Capped at the hard limit, which an unprivileged process cannot pass.
   */
  fdLimit?: number;
  /**
   * Run the child in a process group of its own and signal the whole group:
   * for a server whose workers are its own children (nginx), which a SIGKILL
   * of the parent alone would leave running with the port.
   */
  processGroup?: boolean;
}

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** The `ready` match, for reading a port or URL out of it; empty for a polled `ready`. */
  readonly match: RegExpExecArray | null;
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
  const [command, args] = withFdLimit(opts.command, opts.args, opts.fdLimit);
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: opts.processGroup === true,
  });
  const kill = opts.processGroup ? (signal: NodeJS.Signals) => killGroup(child.pid, signal) : (signal: NodeJS.Signals) => void child.kill(signal);
  live.set(child, kill);

  let stdout = '';
  let stderr = '';
  const keep = (s: string) => (s.length > MAX_KEPT_OUTPUT ? s.slice(-MAX_KEPT_OUTPUT) : s);
  const output = () => `${stdout}${stderr ? `\n[stderr]\n${stderr}` : ''}`;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(child);
      // A group's leader may go first; whatever it left behind goes with it.
      if (opts.processGroup) killGroup(child.pid, 'SIGKILL');
      resolve();
    });
  });

  const stop = async (graceMs = 3_000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    kill('SIGTERM');
    const timer = setTimeout(() => kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return new Promise<Child>((resolve, reject) => {
    let settled = false;
    let poller: NodeJS.Timeout | undefined;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(poller);
      void stop(500);
      reject(new StartError(`${opts.name}: ${why}`, output()));
    };
    const succeed = (match: RegExpExecArray | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(poller);
      if (child.pid === undefined) return reject(new StartError(`${opts.name}: no pid`, output()));
      resolve({ name: opts.name, pid: child.pid, match, output, stop });
    };
    const timer = setTimeout(() => fail(`not ready after ${opts.timeoutMs} ms`), opts.timeoutMs);

    const ready = opts.ready;
    if (typeof ready === 'function') {
      // Bounded by `timer`: once it fires, `settled` stops the polling.
      const poll = () => {
        if (settled) return;
        ready().then(
          (ok) => (ok ? succeed(null) : (poller = setTimeout(poll, 50))),
          () => (poller = setTimeout(poll, 50)),
        );
      };
      poller = setTimeout(poll, 50);
    }
    child.stdout?.setEncoding('utf8').on('data', (text: string) => {
      stdout = keep(stdout + text);
      if (settled || typeof ready === 'function') return;
      const match = ready.exec(stdout);
      if (match) succeed(match);
    });
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      stderr = keep(stderr + text);
    });
    child.once('error', (err) => fail(`cannot start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited before it was ready (${signal ?? `code ${code}`})`));
  });
}

export interface WorkerOptions {
  /** Node arguments before the script, e.g. ['--import', 'tsx']. */
  execArgv: readonly string[];
  script: string;
  cwd?: string;
  fdLimit?: number;
}

/**
 * A Node child with an IPC channel (structured-clone serialisation, so typed
 * arrays travel as they are), under a raised open-files limit. Its stderr is
 * passed through; it is killed with the rest when the bench exits.
 */
export function spawnWorker(opts: WorkerOptions): ChildProcess {
  hookExit();
  const [command, args] = withFdLimit(process.execPath, [...opts.execArgv, opts.script], opts.fdLimit);
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: process.env,
    // 'ipc' works through the shell's exec: the channel is an inherited fd named in NODE_CHANNEL_FD.
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  live.set(child, (signal) => void child.kill(signal));
  child.once('exit', () => live.delete(child));
  return child;
}

/** Sends one IPC message, resolving once it has been handed to the channel. */
export function sendTo(child: ChildProcess, message: Serializable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!child.connected) {
      reject(new Error('worker is gone'));
      return;
    }
    child.send(message, (err) => (err ? reject(err) : resolve()));
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
 * CPU seconds a process has used, all its threads, user and system; NaN off
 * Linux. From the scheduler's own accounting (/proc/PID/task/TID/schedstat,
 * in nanoseconds) where the kernel keeps it, else from /proc/PID/stat's
 * 10 ms ticks: a figure per command, over a couple of thousand commands of
 * 50 to 100 µs each, needs the former. A thread that ends between two
 * readings takes its time with it (a Node server's threads live as long as
 * it does). With the client's own process.cpuUsage() it shows which side of
 * a fan-out was the bottleneck on a small machine.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  try {
    let ns = 0;
    let read = 0;
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      // A thread may end between the listing and the read; a kernel without schedstats has no such file at all.
      const text = await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').catch(() => null);
      if (text === null) continue;
      ns += Number(text.split(' ')[0]);
      read++;
    }
    if (read > 0) return ns / 1e9;
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

/**
 * Pids whose parent is `pid` (nginx's workers), from /proc/PID/stat. One pass
 * over /proc, so bounded by the number of processes on the machine.
 */
export async function childPids(pid: number): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(name));
    } catch {
      // Gone between readdir and read.
    }
  }
  return found;
}
