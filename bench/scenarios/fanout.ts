// Fan-out: one channel, many subscribers, a few commands. Each command is sent
// only after every subscriber has its predecessor (or the wait timed out), so
// a run measures how fast one event reaches a whole room, not a queue.
//
// The subscribers live in worker processes (lib/pool.ts), at most
// `perWorker` each: one process may hold only 20,000 open files, and 10,000
// subscribers on each of three servers are 30,000 sockets on the client side.
// Workers stamp arrivals on the machine's monotonic clock, the bench stamps
// each publish on the same clock, so every delivery's latency is kept
// (subscribers x commands samples).
//
// deliveries/s is all deliveries over the summed publish-to-last-delivery
// spans, which leaves out the pauses between commands.
//
// All targets hold their subscribers at the same time and take turns in
// blocks of commands (ABC CBA), as the latency scenario does, so drifting
// noise on a shared machine is spread over all of them.
import { monoNow } from '../lib/clock';
import { JsonClient } from '../lib/http';
import { deliveryLatencies, SubscriberPool } from '../lib/pool';
import { round, roundSummary, summarize, type Summary } from '../lib/stats';
import { commandIdFactory, type BenchChannel, type Target } from '../lib/targets';
import { judge, sleep, targetsOf, type Json, type Row, type Scenario } from '../lib/scenario';

export interface FanOutOptions {
  subscribers: number;
  commands: number;
  /** Commands per turn while the targets alternate. */
  block: number;
  /** Most subscribers one worker process holds. */
  perWorker: number;
  /** Subscribers connecting at once over all workers; under Node's default listen backlog of 511. */
  connectConcurrency: number;
  /** Longest wait for one command to reach everybody. */
  deliveryTimeoutMs: number;
}

export const FANOUT_DEFAULTS: FanOutOptions = {
  subscribers: 5_000,
  commands: 50,
  block: 10,
  perWorker: 5_000,
  connectConcurrency: 200,
  deliveryTimeoutMs: 15_000,
};

export interface FanOutResult {
  latency: Summary;
  deliveriesPerSecond: number;
  expected: number;
  delivered: number;
  /** Streams the server ended during the run (Clicker drops subscribers that fall 1 MiB behind). */
  droppedStreams: number;
  dropReasons: string[];
  /** Commands that had not reached everybody when the wait ran out. */
  timedOut: number;
  /** Deliveries stamped before their publish started: would mean the shared clock is not shared. */
  negative: number;
  connectSeconds: number;
  workers: number;
  /** Share of one core each side used while commands were in flight; clients near 100% per worker would mean the figures are the client's. */
  serverCpuPct: number;
  clientCpuPct: number;
}

/** Polls the server's own count of open streams until `want` says yes or `ms` passes. */
export async function waitForSubscribers(target: Target, client: JsonClient, want: (n: number) => boolean, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let n = await target.subscribers(client);
  while (!want(n) && performance.now() < until) {
    await sleep(100);
    n = await target.subscribers(client);
  }
  return n;
}

/** One target's channel with its subscribers open in workers, ready to take commands. */
export class FanOutProbe {
  private readonly sentAt = new Map<string, number>();
  private readonly nextId: () => string;
  private sent = 0;
  private timedOut = 0;
  private busyMs = 0;
  private wallMs = 0;
  private serverCpu = 0;
  private clientCpu = 0;
  private pool: SubscriberPool | undefined;
  private baseSubs = 0;

  private constructor(
    readonly target: Target,
    private readonly opts: FanOutOptions,
    private readonly client: JsonClient,
    private readonly ch: BenchChannel,
  ) {
    this.nextId = commandIdFactory(`fan-${target.name}`);
  }

  static async open(target: Target, opts: FanOutOptions, ctx: { rootDir: string; log: (line: string) => void; workerFdLimit: number }): Promise<FanOutProbe> {
    const client = new JsonClient(target.host, target.port);
    const probe = new FanOutProbe(target, opts, client, await target.openChannel(client));
    try {
      probe.baseSubs = await target.subscribers(client);
      probe.pool = await SubscriberPool.open({
        rootDir: ctx.rootDir,
        target,
        path: probe.ch.subscribePath,
        eventName: probe.ch.eventName,
        count: opts.subscribers,
        perWorker: opts.perWorker,
        concurrency: opts.connectConcurrency,
        connectTimeoutMs: 20_000,
        tolerant: false,
        maxCommands: opts.commands,
        fdLimit: ctx.workerFdLimit,
      });
      // The response head can reach us before the server has counted the stream; publish only once all are counted.
      const want = probe.baseSubs + opts.subscribers;
      const held = await waitForSubscribers(target, client, (n) => n >= want, 10_000);
      if (held < want) throw new Error(`${target.name}: server holds ${held - probe.baseSubs} of ${opts.subscribers} streams`);
      ctx.log(`fan-out ${target.name}: ${opts.subscribers} subscribers in ${probe.pool.pids.length} workers, up in ${probe.pool.connectSeconds.toFixed(1)} s`);
    } catch (err) {
      await probe.close();
      throw err;
    }
    return probe;
  }

  /** Sends up to `n` more commands, each once the previous one has reached everybody. */
  async send(n: number, log: (line: string) => void): Promise<void> {
    const { target, opts, ch } = this;
    const pool = this.pool;
    if (!pool) throw new Error(`${target.name}: not open`);
    const wall0 = monoNow();
    const server0 = await target.cpuSeconds();
    const client0 = await pool.cpuSeconds();
    for (let i = 0; i < n && this.sent < opts.commands; i++, this.sent++) {
      const id = this.nextId();
      const sentAt = monoNow();
      this.sentAt.set(id, sentAt);
      const status = await ch.publish(this.client, id);
      if (!ch.publishOk.includes(status)) throw new Error(`${target.name}: publish answered ${status}`);
      const { complete, lastAt } = await pool.waitComplete(id, opts.deliveryTimeoutMs);
      if (!complete) {
        this.timedOut++;
        log(`fan-out ${target.name}: a command did not reach every subscriber within ${opts.deliveryTimeoutMs} ms`);
      }
      this.busyMs += (lastAt > 0 ? lastAt : monoNow()) - sentAt;
    }
    this.wallMs += monoNow() - wall0;
    this.serverCpu += (await target.cpuSeconds()) - server0;
    this.clientCpu += (await pool.cpuSeconds()) - client0;
  }

  get finished(): boolean {
    return this.sent >= this.opts.commands;
  }

  async result(): Promise<FanOutResult> {
    const pool = this.pool;
    if (!pool) throw new Error(`${this.target.name}: not open`);
    const samples = await pool.collect();
    let delivered = 0;
    for (const n of samples.received.values()) delivered += n;
    const { latencies, negative } = deliveryLatencies([samples], this.sentAt, delivered);
    const wallSeconds = this.wallMs / 1000;
    return {
      latency: summarize(latencies),
      deliveriesPerSecond: this.busyMs > 0 ? delivered / (this.busyMs / 1000) : Number.NaN,
      expected: this.opts.subscribers * this.opts.commands,
      delivered,
      droppedStreams: samples.dropped,
      dropReasons: samples.dropReasons,
      timedOut: this.timedOut,
      negative,
      connectSeconds: pool.connectSeconds,
      workers: pool.pids.length,
      serverCpuPct: (100 * this.serverCpu) / wallSeconds,
      clientCpuPct: (100 * this.clientCpu) / wallSeconds,
    };
  }

  /** Closes every subscriber and waits until the server has seen it, so what runs next starts from a quiet server. */
  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = undefined;
    await waitForSubscribers(this.target, this.client, (n) => n <= this.baseSubs, 10_000).catch(() => 0);
    this.client.close();
  }
}

function toJson(x: FanOutResult): Json {
  return {
    latency: { ...roundSummary(x.latency) },
    deliveriesPerSecond: Math.round(x.deliveriesPerSecond),
    expected: x.expected,
    delivered: x.delivered,
    droppedStreams: x.droppedStreams,
    dropReasons: x.dropReasons,
    timedOut: x.timedOut,
    negativeSamples: x.negative,
    connectSeconds: round(x.connectSeconds, 2),
    workers: x.workers,
    serverCpuPct: round(x.serverCpuPct, 1),
    clientCpuPct: round(x.clientCpuPct, 1),
  };
}

/** What broke: lost deliveries or streams, which make the figures meaningless. */
function problemsOf(name: string, x: FanOutResult): string[] {
  const out: string[] = [];
  if (x.delivered < x.expected) out.push(`${name}: ${x.expected - x.delivered} of ${x.expected} deliveries lost`);
  if (x.droppedStreams > 0) out.push(`${name}: ${x.droppedStreams} streams closed by the server (${x.dropReasons[0] ?? '?'})`);
  if (x.negative > 0) out.push(`${name}: ${x.negative} deliveries stamped before their publish (clock)`);
  return out;
}

export function fanOutScenario(name: string, opts: FanOutOptions = FANOUT_DEFAULTS): Scenario {
  const k = `${opts.subscribers / 1000}k`;
  return {
    name,
    needsServers: true,
    description: `fan-out, 1 channel x ${opts.subscribers} subscribers, ${opts.commands} commands`,
    async run(ctx) {
      const probes: FanOutProbe[] = [];
      const results: FanOutResult[] = [];
      try {
        for (const t of targetsOf(ctx)) probes.push(await FanOutProbe.open(t, opts, ctx));
        // Let the connection burst's after-effects (GC, kernel queues) pass before the first command.
        await sleep(500);
        for (let turn = 0; probes.some((p) => !p.finished); turn++) {
          if (Date.now() > ctx.deadline) throw new Error('out of time');
          const order = turn % 2 === 0 ? probes : [...probes].reverse();
          for (const p of order) await p.send(opts.block, ctx.log);
        }
        for (const p of probes) results.push(await p.result());
      } finally {
        for (const p of probes) await p.close();
      }
      const [c, r, n] = results as [FanOutResult, FanOutResult, FanOutResult | undefined];
      ctx.log(
        `fan-out ${k}: deliveries/s clicker ${Math.round(c.deliveriesPerSecond)}, relay ${Math.round(r.deliveriesPerSecond)}` +
          `${n ? `, nchan ${Math.round(n.deliveriesPerSecond)}` : ''}`,
      );
      const rows: Row[] = [
        { figure: `fan-out ${k}: delivery p50`, clicker: c.latency.p50, relay: r.latency.p50, nchan: n?.latency.p50 ?? null, unit: 'ms' },
        { figure: `fan-out ${k}: delivery p99`, clicker: c.latency.p99, relay: r.latency.p99, nchan: n?.latency.p99 ?? null, unit: 'ms' },
        {
          figure: `fan-out ${k}: deliveries/s`,
          clicker: Math.round(c.deliveriesPerSecond),
          relay: Math.round(r.deliveriesPerSecond),
          nchan: n ? Math.round(n.deliveriesPerSecond) : null,
          unit: '/s',
          goals: [
            { text: '>= relay', pass: judge(c.deliveriesPerSecond / r.deliveriesPerSecond, '>=', 1) },
            { text: '>= nchan', pass: n ? judge(c.deliveriesPerSecond / n.deliveriesPerSecond, '>=', 1) : null },
          ],
        },
        {
          figure: `fan-out ${k}: delivered`,
          clicker: `${c.delivered}/${c.expected}`,
          relay: `${r.delivered}/${r.expected}`,
          nchan: n ? `${n.delivered}/${n.expected}` : null,
          unit: '',
        },
      ];
      return {
        rows,
        data: {
          options: { ...opts },
          clicker: toJson(c),
          relay: toJson(r),
          nchan: n ? toJson(n) : null,
        },
        problems: [...problemsOf('clicker', c), ...problemsOf('relay', r), ...(n ? problemsOf('nchan', n) : [])],
      };
    },
  };
}
