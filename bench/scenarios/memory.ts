// Memory per idle subscriber: how much resident memory one more open stream
// costs a server, the figure that decides how many followers one small
// machine can hold.
//
// Each target is started fresh for this, so memory freed by earlier scenarios
// (a 10,000-subscriber fan-out leaves a large heap behind) cannot be reused
// and hide the cost. A few warm-up subscribers stay open throughout, so
// one-time costs (the first stream's code paths, buffers allocated once) are
// in the "before" reading and not charged to every subscriber.
//
//   before: warm-up subscribers open, full GC, VmRSS from /proc
//   after:  N more idle subscribers, counted by the server, full GC, VmRSS
//   per subscriber = (after - before) / N
//
// The Node servers collect on POST /debug/gc (node --expose-gc); nginx has no
// collector and its RSS is the master's plus its workers'.
import { JsonClient } from '../lib/http';
import { SubscriberPool } from '../lib/pool';
import { round } from '../lib/stats';
import type { Target, TargetName } from '../lib/targets';
import { judge, sleep, type Context, type Json, type Scenario } from '../lib/scenario';
import { waitForSubscribers } from './fanout';

export interface MemoryOptions {
  subscribers: number;
  /** Subscribers opened first and kept open, so one-time costs fall before the first reading. */
  warmup: number;
  perWorker: number;
  connectConcurrency: number;
  /** Pause before each reading, for the server to finish what connecting set off. */
  settleMs: number;
}

export const MEMORY_DEFAULTS: MemoryOptions = { subscribers: 5_000, warmup: 200, perWorker: 5_000, connectConcurrency: 200, settleMs: 500 };

interface MemoryResult {
  beforeKiB: number;
  afterKiB: number;
  perSubscriberKiB: number;
  gc: boolean;
  connectSeconds: number;
}

async function settledRss(target: Target, client: JsonClient, settleMs: number): Promise<{ kib: number; gc: boolean }> {
  await sleep(settleMs);
  // Twice: the first full collection may leave finalisable objects that only the second one frees.
  const gc = (await target.collectGarbage(client)) && (await target.collectGarbage(client));
  await sleep(200);
  return { kib: await target.rssKiB(), gc };
}

async function measure(target: Target, opts: MemoryOptions, ctx: Context): Promise<MemoryResult> {
  const client = new JsonClient(target.host, target.port);
  const pools: SubscriberPool[] = [];
  try {
    const ch = await target.openChannel(client);
    const base = await target.subscribers(client);
    const openPool = async (count: number) => {
      const pool = await SubscriberPool.open({
        rootDir: ctx.rootDir,
        target,
        path: ch.subscribePath,
        eventName: ch.eventName,
        count,
        perWorker: opts.perWorker,
        concurrency: opts.connectConcurrency,
        connectTimeoutMs: 20_000,
        tolerant: false,
        maxCommands: 0,
        fdLimit: ctx.workerFdLimit,
      });
      pools.push(pool);
      const want = base + pools.reduce((n, p) => n + p.opened, 0);
      const held = await waitForSubscribers(target, client, (n) => n >= want, 10_000);
      if (held < want) throw new Error(`${target.name}: server holds ${held - base} of ${want - base} streams`);
      return pool;
    };
    await openPool(opts.warmup);
    const before = await settledRss(target, client, opts.settleMs);
    const pool = await openPool(opts.subscribers);
    const after = await settledRss(target, client, opts.settleMs);
    const perSubscriberKiB = (after.kib - before.kib) / opts.subscribers;
    ctx.log(`memory ${target.name}: ${before.kib} -> ${after.kib} KiB over ${opts.subscribers} idle subscribers: ${perSubscriberKiB.toFixed(2)} KiB each`);
    return { beforeKiB: before.kib, afterKiB: after.kib, perSubscriberKiB, gc: before.gc && after.gc, connectSeconds: pool.connectSeconds };
  } finally {
    for (const p of pools) await p.close();
    client.close();
  }
}

export function memoryScenario(opts: MemoryOptions = MEMORY_DEFAULTS): Scenario {
  return {
    name: 'memory',
    needsServers: true,
    description: `memory per idle subscriber: RSS after GC, ${opts.subscribers} subscribers on a fresh server`,
    async run(ctx) {
      const results = new Map<TargetName, MemoryResult>();
      for (const name of ['clicker', 'relay', 'nchan'] as const) {
        const launch = ctx.launch[name];
        if (!launch) continue;
        if (Date.now() > ctx.deadline) throw new Error('out of time');
        const target = await launch();
        try {
          results.set(name, await measure(target, opts, ctx));
        } finally {
          await target.stop();
        }
      }
      const c = results.get('clicker');
      const r = results.get('relay');
      const n = results.get('nchan');
      if (!c || !r) throw new Error('memory: clicker and relay must both be measured');
      const json = (x: MemoryResult | undefined): Json =>
        x
          ? {
              beforeKiB: x.beforeKiB,
              afterKiB: x.afterKiB,
              perSubscriberKiB: round(x.perSubscriberKiB, 2),
              gcBeforeReading: x.gc,
              connectSeconds: round(x.connectSeconds, 2),
            }
          : null;
      return {
        rows: [
          {
            figure: `memory per idle subscriber (${opts.subscribers / 1000}k, RSS after GC)`,
            clicker: c.perSubscriberKiB,
            relay: r.perSubscriberKiB,
            nchan: n?.perSubscriberKiB ?? null,
            unit: 'KiB',
            goals: [{ text: '<= 12 KiB', pass: judge(c.perSubscriberKiB, '<=', 12) }],
          },
        ],
        data: { options: { ...opts }, clicker: json(c), relay: json(r), nchan: json(n) },
      };
    },
  };
}
