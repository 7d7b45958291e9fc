// Fan-out: one channel, many subscribers, a few commands. Each command is sent
// only after every subscriber has its predecessor (or the wait timed out), so
// a run measures how fast one event reaches a whole room, not a queue.
//
// Every delivery's latency is kept (subscribers x commands samples), and
// deliveries/s is all deliveries over the summed publish-to-last-delivery
// spans, which leaves out the client's own pauses between commands.
//
// Both targets hold their subscribers at the same time and take turns in
// blocks of commands (ABBA), as the latency scenario does, so drifting noise
// on a shared machine is spread over both. That needs twice the subscribers'
// file descriptors in this process; when the limit is too low the targets
// run one after the other instead.
import { performance } from 'node:perf_hooks';
import { cpuSeconds, rssKiB } from '../lib/children';
import { JsonClient } from '../lib/http';
import { round, roundSummary, summarize, type Summary } from '../lib/stats';
import { openMany, type SseSubscriber } from '../lib/sse-client';
import { commandIdFactory, commandIdOf, type BenchChannel, type Target } from '../lib/targets';
import { sleep, type Json, type Scenario } from '../lib/scenario';

export interface FanOutOptions {
  subscribers: number;
  commands: number;
  /** Commands per turn when the targets alternate. */
  block: number;
  /** Subscribers connecting at once; under Node's default listen backlog of 511. */
  connectConcurrency: number;
  /** Longest wait for one command to reach everybody. */
  deliveryTimeoutMs: number;
  /** Open files this process may use; decides whether both targets can hold their subscribers at once. */
  fdLimit: number;
}

export const FANOUT_DEFAULTS: FanOutOptions = {
  subscribers: 5_000,
  commands: 50,
  block: 10,
  connectConcurrency: 200,
  deliveryTimeoutMs: 15_000,
  fdLimit: 1024,
};

export interface FanOutResult {
  latency: Summary;
  deliveriesPerSecond: number;
  expected: number;
  delivered: number;
  /** Streams the server ended during the run (Clicker drops subscribers that fall 1 MiB behind). */
  droppedStreams: number;
  connectSeconds: number;
  /** Server RSS growth over the open streams divided by their number; rough, one reading each side. */
  rssKiBPerSubscriber: number;
  /** Share of one core each side used while commands were in flight; a client near 100% would mean the figures are the client's. */
  serverCpuPct: number;
  clientCpuPct: number;
}

interface InFlight {
  sentAt: number;
  remaining: number;
  lastAt: number;
  done: () => void;
}

async function waitForSubscribers(target: Target, client: JsonClient, want: (n: number) => boolean, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let n = await target.subscribers(client);
  while (!want(n) && performance.now() < until) {
    await sleep(100);
    n = await target.subscribers(client);
  }
  return n;
}

/** One target's channel with its subscribers open, ready to take commands. */
export class FanOutProbe {
  private readonly inFlight = new Map<string, InFlight>();
  private readonly latencies: Float64Array;
  private readonly nextId: () => string;
  private delivered = 0;
  private dropped = 0;
  private sent = 0;
  private busySeconds = 0;
  private wallSeconds = 0;
  private serverCpu = 0;
  private clientCpu = 0;
  private subs: SseSubscriber[] = [];
  private connectSeconds = 0;
  private rssPerSub = Number.NaN;
  private baseSubs = 0;

  private constructor(
    readonly target: Target,
    private readonly opts: FanOutOptions,
    private readonly client: JsonClient,
    private readonly ch: BenchChannel,
  ) {
    this.latencies = new Float64Array(opts.subscribers * opts.commands);
    this.nextId = commandIdFactory(`fan-${target.name}`);
  }

  static async open(target: Target, opts: FanOutOptions, log: (line: string) => void): Promise<FanOutProbe> {
    const client = new JsonClient(target.host, target.port);
    const probe = new FanOutProbe(target, opts, client, await target.openChannel(client));
    try {
      await probe.connect(log);
    } catch (err) {
      await probe.close();
      throw err;
    }
    return probe;
  }

  private async connect(log: (line: string) => void): Promise<void> {
    const { target, opts, ch } = this;
    this.baseSubs = await target.subscribers(this.client);
    // Let the allocator settle after earlier work before the "before" reading.
    await sleep(300);
    const rssBefore = await rssKiB(target.pid);
    const t0 = performance.now();
    this.subs = await openMany(opts.subscribers, opts.connectConcurrency, () => ({
      host: target.host,
      port: target.port,
      path: ch.subscribePath,
      timeoutMs: 20_000,
      onEvent: (msg) => {
        if (msg.event !== ch.eventName) return;
        const id = commandIdOf(msg.data);
        const f = id === undefined ? undefined : this.inFlight.get(id);
        if (!f) return;
        if (this.delivered < this.latencies.length) this.latencies[this.delivered] = msg.at - f.sentAt;
        this.delivered++;
        f.lastAt = msg.at;
        if (--f.remaining === 0) f.done();
      },
      onClose: () => {
        this.dropped++;
      },
    }));
    this.connectSeconds = (performance.now() - t0) / 1000;
    // The response head can reach us before the server has counted the stream; publish only once all are counted.
    const want = this.baseSubs + opts.subscribers;
    const held = await waitForSubscribers(target, this.client, (n) => n >= want, 10_000);
    if (held < want) throw new Error(`${target.name}: server holds ${held - this.baseSubs} of ${opts.subscribers} streams`);
    this.rssPerSub = ((await rssKiB(target.pid)) - rssBefore) / opts.subscribers;
    log(`fan-out ${target.name}: ${opts.subscribers} subscribers up in ${this.connectSeconds.toFixed(1)} s`);
  }

  /** Sends up to `n` more commands, each once the previous one has reached everybody. */
  async send(n: number, log: (line: string) => void): Promise<void> {
    const { target, opts, ch } = this;
    const wall0 = performance.now();
    const server0 = await cpuSeconds(target.pid);
    const client0 = process.cpuUsage();
    for (let i = 0; i < n && this.sent < opts.commands; i++, this.sent++) {
      const id = this.nextId();
      let done: () => void = () => {};
      const all = new Promise<void>((resolve) => {
        done = resolve;
      });
      const f: InFlight = { sentAt: 0, remaining: opts.subscribers - this.dropped, lastAt: 0, done };
      this.inFlight.set(id, f);
      f.sentAt = performance.now();
      const status = await ch.publish(this.client, id);
      if (status !== ch.publishOk) throw new Error(`${target.name}: publish answered ${status}`);
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        all.then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), opts.deliveryTimeoutMs);
        }),
      ]);
      clearTimeout(timer);
      this.inFlight.delete(id);
      if (timedOut) {
        log(`fan-out ${target.name}: a command reached ${opts.subscribers - f.remaining} of ${opts.subscribers} in ${opts.deliveryTimeoutMs} ms`);
        if (f.lastAt === 0) throw new Error(`${target.name}: a command reached nobody`);
      }
      this.busySeconds += ((f.lastAt || performance.now()) - f.sentAt) / 1000;
    }
    this.wallSeconds += (performance.now() - wall0) / 1000;
    this.serverCpu += (await cpuSeconds(target.pid)) - server0;
    const usage = process.cpuUsage(client0);
    this.clientCpu += (usage.user + usage.system) / 1e6;
  }

  get finished(): boolean {
    return this.sent >= this.opts.commands;
  }

  result(): FanOutResult {
    return {
      latency: summarize(this.latencies.subarray(0, Math.min(this.delivered, this.latencies.length))),
      deliveriesPerSecond: this.busySeconds > 0 ? this.delivered / this.busySeconds : Number.NaN,
      expected: this.opts.subscribers * this.opts.commands,
      delivered: this.delivered,
      droppedStreams: this.dropped,
      connectSeconds: this.connectSeconds,
      rssKiBPerSubscriber: this.rssPerSub,
      serverCpuPct: (100 * this.serverCpu) / this.wallSeconds,
      clientCpuPct: (100 * this.clientCpu) / this.wallSeconds,
    };
  }

  /** Closes every subscriber and waits until the server has seen it, so what runs next starts from a quiet server. */
  async close(): Promise<void> {
    for (const s of this.subs) s.close();
    this.subs = [];
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
    connectSeconds: round(x.connectSeconds, 2),
    rssKiBPerSubscriber: round(x.rssKiBPerSubscriber, 2),
    serverCpuPct: round(x.serverCpuPct, 1),
    clientCpuPct: round(x.clientCpuPct, 1),
  };
}

export function fanOutScenario(opts: FanOutOptions = FANOUT_DEFAULTS): Scenario {
  const k = `${opts.subscribers / 1000}k`;
  return {
    name: 'fanout',
    needsServers: true,
    description: `fan-out, 1 channel x ${opts.subscribers} subscribers, ${opts.commands} commands`,
    async run(ctx) {
      // Both sets of subscribers at once, plus room for the publishers, Chromium's leftovers and stdio.
      const together = opts.fdLimit >= 2 * opts.subscribers + 500;
      const results: FanOutResult[] = [];
      if (together) {
        const probes: FanOutProbe[] = [];
        try {
          probes.push(await FanOutProbe.open(ctx.clicker, opts, ctx.log));
          probes.push(await FanOutProbe.open(ctx.relay, opts, ctx.log));
          for (let turn = 0; probes.some((p) => !p.finished); turn++) {
            if (Date.now() > ctx.deadline) throw new Error('out of time');
            const order = turn % 2 === 0 ? probes : [...probes].reverse();
            for (const p of order) await p.send(opts.block, ctx.log);
          }
          results.push(...probes.map((p) => p.result()));
        } finally {
          for (const p of probes) await p.close();
        }
      } else {
        ctx.log(`fan-out: ${opts.fdLimit} open files is too few for both targets at once; running them one after the other`);
        for (const target of [ctx.clicker, ctx.relay]) {
          const p = await FanOutProbe.open(target, opts, ctx.log);
          try {
            await p.send(opts.commands, ctx.log);
            results.push(p.result());
          } finally {
            await p.close();
          }
        }
      }
      const [c, r] = results as [FanOutResult, FanOutResult];
      return {
        rows: [
          { figure: `fan-out ${k}: delivery p50`, clicker: c.latency.p50, relay: r.latency.p50, unit: 'ms' },
          { figure: `fan-out ${k}: delivery p99`, clicker: c.latency.p99, relay: r.latency.p99, unit: 'ms' },
          { figure: `fan-out ${k}: deliveries/s`, clicker: Math.round(c.deliveriesPerSecond), relay: Math.round(r.deliveriesPerSecond), unit: '/s' },
          { figure: `fan-out ${k}: delivered`, clicker: `${c.delivered}/${c.expected}`, relay: `${r.delivered}/${r.expected}`, unit: '' },
          { figure: `fan-out ${k}: server RSS per stream`, clicker: c.rssKiBPerSubscriber, relay: r.rssKiBPerSubscriber, unit: 'KiB' },
        ],
        data: { options: { ...opts }, interleaved: together, clicker: toJson(c), relay: toJson(r) },
      };
    },
  };
}
