// Fan-out across three Clicker instances that share channels through one
// Redis (README, "Deployment: several instances"), beside one instance on its
// in-memory bus, in the same run.
//
// One channel, created on the first instance. In the three-instance case its
// subscribers are spread evenly over the three, and the commands are posted
// to A, B, C, A, ... in turn, so two commands in three come in on an instance
// that holds only a third of the room and every delivery crosses Redis
// pub/sub. The one-instance case holds all of them on one server and takes
// every command there. Each command is sent once the previous one reached
// everybody (every subscriber on every instance), as in fanout.ts; both cases
// hold their subscribers at the same time and take turns in blocks of
// commands (ABBA), so drifting noise on a shared machine falls on both.
//
// The servers are the scenario's own, started fresh for it and stopped at the
// end: a private redis-server on a free port (lib/redis.ts: no persistence,
// 127.0.0.1 only), three instances with REDIS_URL pointing at it and one
// without. Subscribers live in worker processes (lib/pool.ts), the same
// number of workers in both cases (one per instance for the three, the room
// cut in three for the one), so the client side does the same work.
//
// There is no goal: the issue asks to show the comparison, i.e. what the
// Redis hop costs a room (per-delivery p50/p99, deliveries/s) and that it
// loses nothing.
import { monoNow } from '../lib/clock';
import { JsonClient } from '../lib/http';
import { deliveryLatencies, shares, SubscriberPool, type Samples } from '../lib/pool';
import { findRedisServer, startRedis, type BenchRedis } from '../lib/redis';
import { round, roundSummary, summarize, type Summary } from '../lib/stats';
import { commandIdFactory, type BenchChannel, type Target } from '../lib/targets';
import { sleep, type ColumnNames, type Json, type Row, type Scenario } from '../lib/scenario';
import { waitForSubscribers } from './fanout';

export interface FanOut3Options {
  /** Subscribers on the channel in all, for each case. */
  subscribers: number;
  /** Instances sharing one Redis in the cluster case. */
  instances: number;
  /** Measured commands per case. */
  commands: number;
  /** Commands sent and awaited first in each case, not measured: the first trip through a fresh path. */
  warmup: number;
  /** Commands per turn while the two cases alternate. */
  block: number;
  /** Subscribers connecting at once, per instance. */
  connectConcurrency: number;
  /** Longest wait for one command to reach everybody. */
  deliveryTimeoutMs: number;
}

export const FANOUT3_DEFAULTS: FanOut3Options = {
  subscribers: 5_000,
  instances: 3,
  commands: 50,
  warmup: 2,
  block: 10,
  connectConcurrency: 200,
  deliveryTimeoutMs: 15_000,
};

/** Starts a fresh Clicker: with REDIS_URL set to `redisUrl`, or on its in-memory bus when undefined. */
export type ClickerLauncher = (redisUrl: string | undefined) => Promise<Target>;

export interface FanOut3Setup {
  launch: ClickerLauncher;
  /** Open files a subscriber worker may use. */
  workerFdLimit: number;
}

interface CaseResult {
  latency: Summary;
  deliveriesPerSecond: number;
  expected: number;
  delivered: number;
  /** Measured deliveries per instance (A, B, C), against what each instance's subscribers should have had. */
  perInstance: { subscribers: number; delivered: number; commandsPostedHere: number }[];
  droppedStreams: number;
  dropReasons: string[];
  timedOut: number;
  negative: number;
  connectSeconds: number;
  workers: number;
  /** Share of one core while commands were in flight: the Clicker instances together, Redis, the subscriber workers. */
  serverCpuPct: number;
  redisCpuPct: number | null;
  clientCpuPct: number;
}

const LETTERS = 'ABCDEFGHIJ';

/** One channel on one or more instances, with its subscribers spread evenly over them in workers. */
class SpreadFanOut {
  private readonly sentAt = new Map<string, number>();
  private readonly nextId: () => string;
  private readonly postedAt: number[];
  private readonly pools: (SubscriberPool | undefined)[];
  private readonly bases: number[];
  connectSeconds = 0;
  private sent = 0;
  private warmed = 0;
  private timedOut = 0;
  private busyMs = 0;
  private wallMs = 0;
  private serverCpu = 0;
  private redisCpu = 0;
  private clientCpu = 0;

  private constructor(
    readonly label: string,
    private readonly instances: Target[],
    private readonly clients: JsonClient[],
    private readonly counts: number[],
    private readonly opts: FanOut3Options,
    private readonly redis: BenchRedis | undefined,
    private ch: BenchChannel | undefined,
  ) {
    this.nextId = commandIdFactory(`f3-${instances.length}`);
    this.postedAt = instances.map(() => 0);
    this.pools = instances.map(() => undefined);
    this.bases = instances.map(() => 0);
  }

  /**
   * Creates the channel on the first instance and opens the subscribers:
   * `opts.subscribers` cut evenly over the instances, in `workers` worker
   * processes in all.
   */
  static async open(
    label: string,
    instances: Target[],
    opts: FanOut3Options,
    workers: number,
    redis: BenchRedis | undefined,
    ctx: { rootDir: string; log: (line: string) => void; workerFdLimit: number },
  ): Promise<SpreadFanOut> {
    const clients = instances.map((t) => new JsonClient(t.host, t.port));
    const counts = shares(opts.subscribers, Math.ceil(opts.subscribers / instances.length));
    const fan = new SpreadFanOut(label, instances, clients, counts, opts, redis, undefined);
    try {
      fan.ch = await instances[0]!.openChannel(clients[0]!);
      // The same number of workers whatever the number of instances, so the client side does the same work.
      const perWorker = Math.ceil(opts.subscribers / workers);
      const t0 = performance.now();
      for (const [i, target] of instances.entries()) {
        const client = clients[i]!;
        fan.bases[i] = await target.subscribers(client);
        const pool = await SubscriberPool.open({
          rootDir: ctx.rootDir,
          target,
          path: fan.ch.subscribePath,
          eventName: fan.ch.eventName,
          count: counts[i]!,
          perWorker,
          concurrency: opts.connectConcurrency,
          connectTimeoutMs: 20_000,
          tolerant: false,
          maxCommands: opts.warmup + opts.commands,
          fdLimit: ctx.workerFdLimit,
        });
        fan.pools[i] = pool;
        const want = fan.bases[i]! + counts[i]!;
        const held = await waitForSubscribers(target, client, (n) => n >= want, 10_000);
        if (held < want) throw new Error(`${label} ${LETTERS[i]}: server holds ${held - fan.bases[i]!} of ${counts[i]} streams`);
      }
      fan.connectSeconds = (performance.now() - t0) / 1000;
      ctx.log(
        `fan-out ${label}: ${opts.subscribers} subscribers (${counts.join(' + ')}) in ${fan.livePools().reduce((n, p) => n + p.pids.length, 0)} workers, ` +
          `up in ${fan.connectSeconds.toFixed(1)} s`,
      );
    } catch (err) {
      await fan.close();
      throw err;
    }
    return fan;
  }

  private livePools(): SubscriberPool[] {
    return this.pools.filter((p): p is SubscriberPool => p !== undefined);
  }

  private async cpu(): Promise<{ server: number; redis: number; client: number }> {
    let server = 0;
    for (const t of this.instances) server += await t.cpuSeconds();
    let client = 0;
    for (const p of this.livePools()) client += await p.cpuSeconds();
    return { server, redis: this.redis ? await this.redis.cpuSeconds() : 0, client };
  }

  /** Posts one command to the next instance in turn and waits until every subscriber on every instance has it. */
  private async one(id: string, log: (line: string) => void): Promise<{ sentAt: number; lastAt: number; at: number }> {
    const ch = this.ch;
    if (!ch || this.livePools().length !== this.instances.length) throw new Error(`${this.label}: not open`);
    const at = (this.sent + this.warmed) % this.instances.length;
    const sentAt = monoNow();
    const status = await ch.publish(this.clients[at]!, id);
    if (!ch.publishOk.includes(status)) throw new Error(`${this.label} ${LETTERS[at]}: publish answered ${status}`);
    const done = await Promise.all(this.livePools().map((p) => p.waitComplete(id, this.opts.deliveryTimeoutMs)));
    if (!done.every((d) => d.complete)) {
      this.timedOut++;
      log(`fan-out ${this.label}: a command did not reach every subscriber within ${this.opts.deliveryTimeoutMs} ms`);
    }
    const lastAt = done.every((d) => d.lastAt > 0) ? Math.max(...done.map((d) => d.lastAt)) : 0;
    return { sentAt, lastAt, at };
  }

  /** The unmeasured first commands. */
  async warm(log: (line: string) => void): Promise<void> {
    while (this.warmed < this.opts.warmup) {
      await this.one(this.nextId(), log);
      this.warmed++;
    }
  }

  /** Sends up to `n` more measured commands, each once the previous one has reached everybody. */
  async send(n: number, log: (line: string) => void): Promise<void> {
    const wall0 = monoNow();
    const cpu0 = await this.cpu();
    for (let i = 0; i < n && this.sent < this.opts.commands; i++) {
      const id = this.nextId();
      const { sentAt, lastAt, at } = await this.one(id, log);
      this.sentAt.set(id, sentAt);
      this.postedAt[at]!++;
      this.sent++;
      this.busyMs += (lastAt > 0 ? lastAt : monoNow()) - sentAt;
    }
    this.wallMs += monoNow() - wall0;
    const cpu1 = await this.cpu();
    this.serverCpu += cpu1.server - cpu0.server;
    this.redisCpu += cpu1.redis - cpu0.redis;
    this.clientCpu += cpu1.client - cpu0.client;
  }

  get finished(): boolean {
    return this.sent >= this.opts.commands;
  }

  async result(): Promise<CaseResult> {
    const pools = this.livePools();
    if (pools.length !== this.instances.length) throw new Error(`${this.label}: not open`);
    const all: Samples[] = [];
    for (const p of pools) all.push(await p.collect());
    const perInstance = all.map((s, i) => {
      let delivered = 0;
      // Only the measured commands: the warm-up ones are not in `sentAt`.
      for (const [id, n] of s.received) if (this.sentAt.has(id)) delivered += n;
      return { subscribers: this.counts[i]!, delivered, commandsPostedHere: this.postedAt[i]! };
    });
    const delivered = perInstance.reduce((n, x) => n + x.delivered, 0);
    const { latencies, negative } = deliveryLatencies(all, this.sentAt, delivered);
    const wallSeconds = this.wallMs / 1000;
    return {
      latency: summarize(latencies),
      deliveriesPerSecond: this.busyMs > 0 ? delivered / (this.busyMs / 1000) : Number.NaN,
      expected: this.opts.subscribers * this.opts.commands,
      delivered,
      perInstance,
      droppedStreams: all.reduce((n, s) => n + s.dropped, 0),
      dropReasons: all.flatMap((s) => s.dropReasons).slice(0, 5),
      timedOut: this.timedOut,
      negative,
      connectSeconds: this.connectSeconds,
      workers: pools.reduce((n, p) => n + p.pids.length, 0),
      serverCpuPct: (100 * this.serverCpu) / wallSeconds,
      redisCpuPct: this.redis ? (100 * this.redisCpu) / wallSeconds : null,
      clientCpuPct: (100 * this.clientCpu) / wallSeconds,
    };
  }

  /** Closes every subscriber and waits until each instance has seen it. */
  async close(): Promise<void> {
    for (const [i, p] of this.pools.entries()) {
      if (!p) continue;
      await p.close();
      this.pools[i] = undefined;
      await waitForSubscribers(this.instances[i]!, this.clients[i]!, (n) => n <= this.bases[i]!, 10_000).catch(() => 0);
    }
    for (const c of this.clients) c.close();
  }
}

function toJson(x: CaseResult): Json {
  return {
    latency: { ...roundSummary(x.latency) },
    deliveriesPerSecond: Math.round(x.deliveriesPerSecond),
    expected: x.expected,
    delivered: x.delivered,
    lost: x.expected - x.delivered,
    perInstance: x.perInstance.map((p, i) => ({ instance: LETTERS[i]!, ...p })),
    droppedStreams: x.droppedStreams,
    dropReasons: x.dropReasons,
    timedOut: x.timedOut,
    negativeSamples: x.negative,
    connectSeconds: round(x.connectSeconds, 2),
    workers: x.workers,
    serverCpuPct: round(x.serverCpuPct, 1),
    redisCpuPct: x.redisCpuPct === null ? null : round(x.redisCpuPct, 1),
    clientCpuPct: round(x.clientCpuPct, 1),
  };
}

/** What broke: lost deliveries or streams, which make the figures meaningless. */
function problemsOf(name: string, x: CaseResult): string[] {
  const out: string[] = [];
  if (x.delivered !== x.expected) out.push(`${name}: ${x.expected - x.delivered} of ${x.expected} deliveries lost`);
  for (const [i, p] of x.perInstance.entries()) {
    const want = p.subscribers * (x.expected / Math.max(1, x.perInstance.reduce((n, q) => n + q.subscribers, 0)));
    if (p.delivered !== want) out.push(`${name}: instance ${LETTERS[i]} delivered ${p.delivered} of ${want}`);
  }
  if (x.droppedStreams > 0) out.push(`${name}: ${x.droppedStreams} streams closed by the server (${x.dropReasons[0] ?? '?'})`);
  if (x.timedOut > 0) out.push(`${name}: ${x.timedOut} commands did not reach everybody in time`);
  if (x.negative > 0) out.push(`${name}: ${x.negative} deliveries stamped before their publish (clock)`);
  return out;
}

export function fanOut3Scenario(setup: FanOut3Setup, opts: FanOut3Options = FANOUT3_DEFAULTS): Scenario {
  const k = `${opts.subscribers / 1000}k`;
  const n = opts.instances;
  return {
    name: 'fanout3',
    needsServers: false,
    description:
      `fan-out over ${n} Clicker instances sharing a private Redis vs 1 instance (in-memory bus): ` +
      `1 channel x ${opts.subscribers} subscribers, ${opts.commands} commands`,
    unavailable: () =>
      findRedisServer() ? undefined : 'redis-server is not on PATH (Debian: apt-get install redis-server; or set REDIS_SERVER_PATH)',
    async run(ctx) {
      const binary = findRedisServer();
      if (!binary) throw new Error('redis-server is not on PATH');
      const cx = { ...ctx, workerFdLimit: setup.workerFdLimit };
      let redis: BenchRedis | undefined;
      const servers: Target[] = [];
      const cases: SpreadFanOut[] = [];
      let cluster: CaseResult;
      let single: CaseResult;
      try {
        redis = await startRedis(binary);
        const url = redis.url;
        const started = await Promise.allSettled([
          setup.launch(undefined),
          ...Array.from({ length: n }, () => setup.launch(url)),
        ]);
        for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
        const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
        // Each is ready by now: startClicker waits for /readyz (the warm-up, and Redis).
        const [one, ...many] = servers as [Target, ...Target[]];
        ctx.log(
          `fanout3: redis-server on ${url} (pid ${redis.pid}); instances ${many.map((t, i) => `${LETTERS[i]} ${t.baseUrl}`).join(', ')}; ` +
            `single instance ${one.baseUrl}`,
        );
        const workers = n;
        const spread = await SpreadFanOut.open(`${n} instances`, many, opts, workers, redis, cx);
        cases.push(spread);
        const alone = await SpreadFanOut.open('1 instance', [one], opts, workers, undefined, cx);
        cases.push(alone);
        // Let the connection burst's after-effects (GC, kernel queues) pass before the first command.
        await sleep(500);
        for (const c of cases) await c.warm(ctx.log);
        for (let turn = 0; cases.some((c) => !c.finished); turn++) {
          if (Date.now() > ctx.deadline) throw new Error('out of time');
          const order = turn % 2 === 0 ? cases : [...cases].reverse();
          for (const c of order) await c.send(opts.block, ctx.log);
        }
        cluster = await spread.result();
        single = await alone.result();
      } finally {
        for (const c of cases) await c.close();
        await Promise.all(servers.map((t) => t.stop()));
        await redis?.stop();
      }
      ctx.log(
        `fanout3: deliveries/s ${n} instances ${Math.round(cluster.deliveriesPerSecond)}, 1 instance ${Math.round(single.deliveriesPerSecond)} ` +
          `(${(cluster.deliveriesPerSecond / single.deliveriesPerSecond).toFixed(2)}x)`,
      );
      const columns: ColumnNames = {
        group: `fan-out over ${n} instances + Redis vs 1`,
        clicker: `${n} instances`,
        relay: '1 instance',
        ratio: `${n} inst/1 inst`,
      };
      const lost = (x: CaseResult) => `${x.delivered}/${x.expected}, ${x.expected - x.delivered} lost`;
      const rows: Row[] = [
        { figure: `fan-out ${k} x${n}: delivery p50`, clicker: cluster.latency.p50, relay: single.latency.p50, unit: 'ms', columns },
        { figure: `fan-out ${k} x${n}: delivery p99`, clicker: cluster.latency.p99, relay: single.latency.p99, unit: 'ms', columns },
        {
          figure: `fan-out ${k} x${n}: deliveries/s`,
          clicker: Math.round(cluster.deliveriesPerSecond),
          relay: Math.round(single.deliveriesPerSecond),
          unit: '/s',
          columns,
        },
        { figure: `fan-out ${k} x${n}: delivered`, clicker: lost(cluster), relay: lost(single), unit: '', columns },
      ];
      return {
        rows,
        data: {
          options: { ...opts },
          redis: 'private redis-server, --save "" --appendonly no --bind 127.0.0.1, free port',
          instances: n,
          cluster: toJson(cluster),
          single: toJson(single),
          /** cluster / single. */
          ratio: {
            deliveriesPerSecond: round(cluster.deliveriesPerSecond / single.deliveriesPerSecond),
            p50: round(cluster.latency.p50 / single.latency.p50),
            p99: round(cluster.latency.p99 / single.latency.p99),
          },
        },
        problems: [...problemsOf(`fanout3 ${n} instances`, cluster), ...problemsOf('fanout3 1 instance', single)],
      };
    },
  };
}
