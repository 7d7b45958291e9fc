// Subscribers held by worker processes (lib/pool-worker.ts), for fan-outs and
// capacity runs larger than one process's open-files limit allows. The bench
// publishes; each worker reports when all of its subscribers have a command,
// and hands over receive times at the end, stamped on the shared monotonic
// clock (lib/clock.ts) so they subtract from the bench's own send times.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { cpuSeconds, sendTo, spawnWorker } from './children';
import { isFromWorker, type FromWorker } from './pool-protocol';
import type { Target } from './targets';

export interface PoolOptions {
  rootDir: string;
  target: Target;
  path: string;
  eventName: string;
  count: number;
  /** Most subscribers one worker holds; well under the 20,000 open files a process may have. */
  perWorker: number;
  /** Connections opening at once over all workers; under the servers' listen backlog (511 for Node). */
  concurrency: number;
  connectTimeoutMs: number;
  /** Count failed connections rather than stop at the first. */
  tolerant: boolean;
  /** Commands whose receive times are kept. */
  maxCommands: number;
  fdLimit: number;
}

export interface Samples {
  /** Receive times per command id, all workers together. */
  times: Map<string, Float64Array[]>;
  received: Map<string, number>;
  dropped: number;
  dropReasons: string[];
}

/**
 * Every delivery's latency in ms (its receive time minus its command's send
 * time) over the commands in `sentAt`, at most `capacity` of them, and how
 * many came out negative (which would mean the shared clock is not shared).
 */
export function deliveryLatencies(samples: readonly Samples[], sentAt: ReadonlyMap<string, number>, capacity: number): { latencies: Float64Array; negative: number } {
  const latencies = new Float64Array(capacity);
  let k = 0;
  let negative = 0;
  for (const s of samples) {
    for (const [id, lists] of s.times) {
      const at = sentAt.get(id);
      if (at === undefined) continue;
      for (const times of lists) {
        for (const t of times) {
          const ms = t - at;
          if (ms < 0) negative++;
          if (k < capacity) latencies[k++] = ms;
        }
      }
    }
  }
  return { latencies: latencies.subarray(0, k), negative };
}

type Listener = (m: FromWorker) => void;

class WorkerHandle {
  private readonly listeners = new Set<Listener>();
  private gone: string | undefined;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: unknown) => {
      if (!isFromWorker(m)) {
        this.fail(`worker ${child.pid}: malformed message`);
        return;
      }
      for (const l of [...this.listeners]) l(m);
    });
    child.once('exit', (code, signal) => this.fail(`worker ${child.pid} exited (${signal ?? `code ${code}`})`));
  }

  private fail(why: string): void {
    this.gone ??= why;
    for (const l of [...this.listeners]) l({ type: 'failed', message: why });
  }

  on(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Sends `message` and waits for the first answer of type `want`, at most `ms`. */
  async ask<T extends FromWorker['type']>(message: Parameters<typeof sendTo>[1], want: T, ms: number): Promise<Extract<FromWorker, { type: T }>> {
    if (this.gone) throw new Error(this.gone);
    let off: () => void = () => {};
    let timer: NodeJS.Timeout | undefined;
    const answer = new Promise<Extract<FromWorker, { type: T }>>((resolve, reject) => {
      off = this.on((m) => {
        if (m.type === 'failed') reject(new Error(m.message));
        else if (m.type === want) resolve(m as Extract<FromWorker, { type: T }>);
      });
      timer = setTimeout(() => reject(new Error(`worker ${this.child.pid}: no "${want}" within ${ms} ms`)), ms);
    });
    try {
      await sendTo(this.child, message);
      return await answer;
    } finally {
      off();
      clearTimeout(timer);
    }
  }
}

/** How `total` splits over workers of at most `per` each, as evenly as possible. */
export function shares(total: number, per: number): number[] {
  const n = Math.max(1, Math.ceil(total / per));
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

export class SubscriberPool {
  /** Per command id: the workers that reported it complete, and the latest arrival among them. */
  private readonly completions = new Map<string, { workers: Set<number>; lastAt: number }>();
  private readonly waiters = new Map<string, () => void>();
  opened = 0;
  errors = 0;
  firstErrors: string[] = [];
  connectSeconds = 0;

  private constructor(
    private readonly workers: WorkerHandle[],
    readonly opts: PoolOptions,
  ) {
    workers.forEach((w, i) =>
      w.on((m) => {
        if (m.type !== 'complete') return;
        let c = this.completions.get(m.id);
        if (!c) this.completions.set(m.id, (c = { workers: new Set(), lastAt: 0 }));
        c.workers.add(i);
        c.lastAt = Math.max(c.lastAt, m.lastAt);
        if (c.workers.size === this.workers.length) this.waiters.get(m.id)?.();
      }),
    );
  }

  get pids(): number[] {
    return this.workers.flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid]));
  }

  /** Starts the workers and opens every subscriber; on failure everything started is closed again. */
  static async open(opts: PoolOptions): Promise<SubscriberPool> {
    const parts = shares(opts.count, opts.perWorker);
    const script = path.join(opts.rootDir, 'bench', 'lib', 'pool-worker.ts');
    const workers = parts.map(
      () => new WorkerHandle(spawnWorker({ execArgv: ['--import', 'tsx'], script, cwd: opts.rootDir, fdLimit: opts.fdLimit })),
    );
    const pool = new SubscriberPool(workers, opts);
    try {
      const t0 = performance.now();
      const concurrency = Math.max(1, Math.floor(opts.concurrency / parts.length));
      const answers = await Promise.all(
        workers.map((w, i) =>
          w.ask(
            {
              op: 'open',
              host: opts.target.host,
              port: opts.target.port,
              path: opts.path,
              count: parts[i]!,
              concurrency,
              eventName: opts.eventName,
              timeoutMs: opts.connectTimeoutMs,
              tolerant: opts.tolerant,
              maxCommands: opts.maxCommands,
            },
            'opened',
            // Every connection has its own timeout; this only catches a worker that hangs.
            30_000 + Math.ceil(parts[i]! / concurrency) * opts.connectTimeoutMs,
          ),
        ),
      );
      pool.connectSeconds = (performance.now() - t0) / 1000;
      for (const a of answers) {
        pool.opened += a.open;
        pool.errors += a.errors;
        pool.firstErrors.push(...a.firstErrors.slice(0, 5 - pool.firstErrors.length));
      }
      if (!opts.tolerant && pool.errors > 0) {
        throw new Error(`${opts.target.name}: ${pool.errors} of ${opts.count} subscribers failed to open: ${pool.firstErrors[0] ?? '?'}`);
      }
      return pool;
    } catch (err) {
      await pool.close();
      throw err;
    }
  }

  /**
   * Waits until every worker reports command `id` complete, or `ms` passes.
   * Call it before publishing or right after: completions that arrive first are kept.
   */
  async waitComplete(id: string, ms: number): Promise<{ complete: boolean; lastAt: number }> {
    const done = () => {
      const c = this.completions.get(id);
      return c !== undefined && c.workers.size === this.workers.length;
    };
    if (!done()) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waiters.set(id, resolve);
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.waiters.delete(id);
    }
    return { complete: done(), lastAt: this.completions.get(id)?.lastAt ?? 0 };
  }

  /** Receive times from every worker. */
  async collect(): Promise<Samples> {
    const answers = await Promise.all(this.workers.map((w) => w.ask({ op: 'collect' }, 'samples', 30_000)));
    const out: Samples = { times: new Map(), received: new Map(), dropped: 0, dropReasons: [] };
    for (const a of answers) {
      a.ids.forEach((id, i) => {
        const list = out.times.get(id) ?? [];
        list.push(a.times[i]!);
        out.times.set(id, list);
        out.received.set(id, (out.received.get(id) ?? 0) + (a.received[i] ?? 0));
      });
      out.dropped += a.dropped;
      out.dropReasons.push(...a.dropReasons.slice(0, 5 - out.dropReasons.length));
    }
    return out;
  }

  /** CPU seconds the workers have used, for telling a client-bound run from a server-bound one. */
  async cpuSeconds(): Promise<number> {
    let total = 0;
    for (const pid of this.pids) total += await cpuSeconds(pid);
    return total;
  }

  /** Closes every subscriber, then ends the workers. */
  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        await w.ask({ op: 'close' }, 'closed', 10_000).catch(() => undefined);
        if (w.child.exitCode !== null || w.child.signalCode !== null) return;
        let timer: NodeJS.Timeout | undefined;
        const exited = new Promise<void>((resolve) => {
          w.child.once('exit', () => resolve());
          // Bounded either way: a worker that ignores the disconnect is killed, and one already gone resolves here.
          timer = setTimeout(() => {
            w.child.kill('SIGKILL');
            resolve();
          }, 3_000);
        });
        // The worker exits on its own once the channel closes.
        if (w.child.connected) w.child.disconnect();
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
