// Command latency with one subscriber: publish-start to delivery, one command
// at a time, on each target (Clicker, the relay, nchan when it runs). Both
// clocks are this process's performance.now(), so there is no cross-process
// clock to trust.
//
// The targets take turns in blocks (ABC CBA order) rather than one whole run
// after the other: this machine is shared and its noise drifts over seconds,
// and alternating spreads the drift over all of them instead of charging it to one.
import { performance } from 'node:perf_hooks';
import { JsonClient } from '../lib/http';
import { round, roundSummary, summarize, type Summary } from '../lib/stats';
import { SseSubscriber } from '../lib/sse-client';
import { commandIdFactory, commandIdOf, type Target } from '../lib/targets';
import { judge, targetsOf, withTimeout, type Scenario } from '../lib/scenario';

export interface LatencyOptions {
  warmup: number;
  count: number;
  /** Blocks per target; count is split evenly over them. */
  blocks: number;
  deliveryTimeoutMs: number;
}

/**
 * 2,000 unmeasured commands per target first. With 100, the whole measured
 * run fell in the machine's own settling time: on the 2-core reference
 * machine even nchan, which has no JIT, answered its first 1,000 commands at
 * 0.11 ms and later ones at 0.06 ms, and a Node server took about 2,500
 * commands to reach its steady figure. Every target gets the same warm-up.
 */
export const LATENCY_DEFAULTS: LatencyOptions = { warmup: 2_000, count: 2_000, blocks: 4, deliveryTimeoutMs: 5_000 };

/** One subscriber and one kept-alive publisher on a fresh channel of one target. */
export class LatencyProbe {
  readonly samples: number[] = [];
  private readonly waiters = new Map<string, (at: number) => void>();
  private readonly nextId: () => string;
  private closed: string | undefined;

  private constructor(
    readonly target: Target,
    private readonly client: JsonClient,
    private readonly publish: (id: string) => Promise<number>,
    private readonly publishOk: readonly number[],
    private sub: SseSubscriber | undefined,
  ) {
    this.nextId = commandIdFactory(`lat-${target.name}`);
  }

  static async open(target: Target): Promise<LatencyProbe> {
    const client = new JsonClient(target.host, target.port);
    const ch = await target.openChannel(client);
    const probe = new LatencyProbe(target, client, (id) => ch.publish(client, id), ch.publishOk, undefined);
    probe.sub = await SseSubscriber.open({
      host: target.host,
      port: target.port,
      path: ch.subscribePath,
      onEvent: (msg) => {
        if (msg.event !== ch.eventName) return;
        const id = commandIdOf(msg.data);
        const waiter = id === undefined ? undefined : probe.waiters.get(id);
        if (id !== undefined && waiter) {
          probe.waiters.delete(id);
          waiter(msg.at);
        }
      },
      onClose: (reason) => {
        probe.closed = reason;
      },
    });
    return probe;
  }

  /** Sends `n` commands one after another; keeps their latencies when `record`. */
  async run(n: number, record: boolean, timeoutMs: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      if (this.closed) throw new Error(`${this.target.name}: stream closed: ${this.closed}`);
      const id = this.nextId();
      let deliver: (at: number) => void = () => {};
      const delivered = new Promise<number>((resolve) => {
        deliver = resolve;
      });
      this.waiters.set(id, deliver);
      const t0 = performance.now();
      // The next command waits for both the delivery and the answer, so the
      // single kept-alive socket is free again and nothing queues behind it.
      const [status, at] = await Promise.all([
        this.publish(id),
        withTimeout(delivered, timeoutMs, `${this.target.name}: delivery of ${id}`),
      ]);
      if (!this.publishOk.includes(status)) throw new Error(`${this.target.name}: publish answered ${status}`);
      if (record) this.samples.push(at - t0);
    }
  }

  close(): void {
    this.sub?.close();
    this.client.close();
  }
}

export function latencyScenario(opts: LatencyOptions = LATENCY_DEFAULTS): Scenario {
  return {
    name: 'latency',
    needsServers: true,
    description: `command latency, 1 subscriber, ${opts.count} sequential commands after ${opts.warmup} warm-up`,
    async run(ctx) {
      const probes: LatencyProbe[] = [];
      // Each server's CPU per measured command, from before the first block
      // to after the last (between its blocks a server is idle).
      const cpuUs: number[] = [];
      try {
        for (const t of targetsOf(ctx)) probes.push(await LatencyProbe.open(t));
        for (const p of probes) await p.run(opts.warmup, false, opts.deliveryTimeoutMs);
        const before = await Promise.all(probes.map((p) => p.target.cpuSeconds()));
        const perBlock = Math.ceil(opts.count / opts.blocks);
        for (let b = 0; b < opts.blocks; b++) {
          if (Date.now() > ctx.deadline) throw new Error('out of time');
          const order = b % 2 === 0 ? probes : [...probes].reverse();
          for (const p of order) {
            const left = opts.count - p.samples.length;
            await p.run(Math.min(perBlock, left), true, opts.deliveryTimeoutMs);
          }
        }
        const after = await Promise.all(probes.map((p) => p.target.cpuSeconds()));
        probes.forEach((p, i) => cpuUs.push(((after[i]! - before[i]!) / p.samples.length) * 1e6));
      } finally {
        for (const p of probes) p.close();
      }
      const [c, r, n] = probes.map((p) => summarize(p.samples)) as [Summary, Summary, Summary | undefined];
      const [cc, rc, nc] = cpuUs.map((v) => round(v, 1)) as [number, number, number | undefined];
      ctx.log(
        `latency: p50 clicker ${c.p50.toFixed(3)} ms, relay ${r.p50.toFixed(3)} ms${n ? `, nchan ${n.p50.toFixed(3)} ms` : ''}`,
      );
      return {
        rows: [
          {
            figure: 'command latency p50 (1 sub)',
            clicker: c.p50,
            relay: r.p50,
            nchan: n?.p50 ?? null,
            unit: 'ms',
            goals: [
              { text: '<= 1.1x relay', pass: judge(c.p50 / r.p50, '<=', 1.1) },
              { text: '<= 1.3x nchan', pass: n ? judge(c.p50 / n.p50, '<=', 1.3) : null },
            ],
          },
          { figure: 'command latency p99 (1 sub)', clicker: c.p99, relay: r.p99, nchan: n?.p99 ?? null, unit: 'ms' },
          { figure: 'command latency mean (1 sub)', clicker: c.mean, relay: r.mean, nchan: n?.mean ?? null, unit: 'ms' },
          // What each server spends on a command, kernel included. Clicker and
          // nchan make the same system calls per command (strace: one read, two
          // writes, one wait), so the difference is each one's own work.
          { figure: 'server CPU per command (1 sub)', clicker: cc, relay: rc, nchan: nc ?? null, unit: 'µs' },
        ],
        data: {
          options: { ...opts },
          clicker: { ...roundSummary(c) },
          relay: { ...roundSummary(r) },
          nchan: n ? { ...roundSummary(n) } : null,
          cpuPerCommandUs: { clicker: cc, relay: rc, nchan: nc ?? null },
          ratio: { p50: round(c.p50 / r.p50), p99: round(c.p99 / r.p99), mean: round(c.mean / r.mean) },
          ratioNchan: n ? { p50: round(c.p50 / n.p50), p99: round(c.p99 / n.p99), mean: round(c.mean / n.mean) } : null,
        },
      };
    },
  };
}
