// Capacity: 19,000 concurrent subscribers on one fresh server process, then
// one command that must reach every one of them. The figure that matters is
// the error count: refused or failed connections, streams the server closed,
// and subscribers that never got the command.
//
// The server may open 20,000 files (the machine's hard limit), which is why
// 19,000 is the mark; the subscribers are spread over worker processes,
// since the bench's own process is capped the same way. The relay runs the
// same test beside Clicker, so a machine that cannot take it shows as such.
// nginx is left out: the peer config allows 19,000 connections per worker in
// all, publisher and status requests included.
import { monoNow } from '../lib/clock';
import { JsonClient } from '../lib/http';
import { SubscriberPool } from '../lib/pool';
import { round } from '../lib/stats';
import { commandIdFactory, type Target, type TargetName } from '../lib/targets';
import { sleep, type Json, type Row, type Scenario } from '../lib/scenario';
import { waitForSubscribers } from './fanout';

export interface CapacityOptions {
  subscribers: number;
  perWorker: number;
  connectConcurrency: number;
  /** Time all subscribers are held open before the command, for late drops to show. */
  holdMs: number;
  deliveryTimeoutMs: number;
}

export const CAPACITY_DEFAULTS: CapacityOptions = {
  subscribers: 19_000,
  perWorker: 5_000,
  connectConcurrency: 200,
  holdMs: 2_000,
  deliveryTimeoutMs: 30_000,
};

interface CapacityResult {
  /** Connections that failed or were refused. */
  failedOpens: number;
  firstErrors: string[];
  /** Streams the server held by its own count, once all were opened. */
  serverHeld: number;
  dropped: number;
  received: number;
  /** failed opens + dropped streams + open subscribers that missed the command. */
  errors: number;
  connectSeconds: number;
  /** Publish to the last subscriber's receipt. */
  allReceivedMs: number;
  rssMiB: number;
}

async function measure(target: Target, opts: CapacityOptions, ctx: { rootDir: string; workerFdLimit: number; log: (l: string) => void }): Promise<CapacityResult> {
  const client = new JsonClient(target.host, target.port);
  let pool: SubscriberPool | undefined;
  try {
    const ch = await target.openChannel(client);
    const base = await target.subscribers(client);
    pool = await SubscriberPool.open({
      rootDir: ctx.rootDir,
      target,
      path: ch.subscribePath,
      eventName: ch.eventName,
      count: opts.subscribers,
      perWorker: opts.perWorker,
      concurrency: opts.connectConcurrency,
      connectTimeoutMs: 20_000,
      tolerant: true,
      maxCommands: 1,
      fdLimit: ctx.workerFdLimit,
    });
    const serverHeld = (await waitForSubscribers(target, client, (n) => n >= base + pool!.opened, 10_000)) - base;
    ctx.log(
      `capacity ${target.name}: ${pool.opened} of ${opts.subscribers} open in ${pool.connectSeconds.toFixed(1)} s ` +
        `(${pool.pids.length} workers), server counts ${serverHeld}${pool.errors ? `; first error: ${pool.firstErrors[0]}` : ''}`,
    );
    await sleep(opts.holdMs);
    const rssMiB = (await target.rssKiB()) / 1024;
    const id = commandIdFactory(`cap-${target.name}`)();
    const sentAt = monoNow();
    const status = await ch.publish(client, id);
    if (!ch.publishOk.includes(status)) throw new Error(`${target.name}: publish answered ${status}`);
    const { lastAt } = await pool.waitComplete(id, opts.deliveryTimeoutMs);
    const samples = await pool.collect();
    const received = samples.received.get(id) ?? 0;
    const missed = Math.max(0, pool.opened - samples.dropped - received);
    return {
      failedOpens: pool.errors,
      firstErrors: pool.firstErrors,
      serverHeld,
      dropped: samples.dropped,
      received,
      errors: pool.errors + samples.dropped + missed,
      connectSeconds: pool.connectSeconds,
      allReceivedMs: lastAt > 0 ? lastAt - sentAt : Number.NaN,
      rssMiB,
    };
  } finally {
    await pool?.close();
    client.close();
  }
}

export function capacityScenario(opts: CapacityOptions = CAPACITY_DEFAULTS): Scenario {
  const k = `${opts.subscribers / 1000}k`;
  return {
    name: 'capacity',
    needsServers: true,
    description: `capacity: ${opts.subscribers} concurrent subscribers on one fresh server, then one command to all`,
    async run(ctx) {
      const results = new Map<TargetName, CapacityResult>();
      for (const name of ['clicker', 'relay'] as const) {
        const launch = ctx.launch[name];
        if (!launch) throw new Error(`capacity: no way to start a fresh ${name}`);
        if (Date.now() > ctx.deadline) throw new Error('out of time');
        const target = await launch();
        try {
          results.set(name, await measure(target, opts, ctx));
        } finally {
          await target.stop();
        }
      }
      const c = results.get('clicker')!;
      const r = results.get('relay')!;
      const json = (x: CapacityResult): Json => ({
        failedOpens: x.failedOpens,
        firstErrors: x.firstErrors,
        serverHeld: x.serverHeld,
        dropped: x.dropped,
        received: x.received,
        errors: x.errors,
        connectSeconds: round(x.connectSeconds, 2),
        allReceivedMs: round(x.allReceivedMs, 1),
        rssMiB: round(x.rssMiB, 1),
      });
      const rows: Row[] = [
        {
          figure: `capacity ${k}: errors`,
          clicker: c.errors,
          relay: r.errors,
          unit: '',
          ratio: null,
          goals: [{ text: `0 errors, ${k} received`, pass: c.errors === 0 && c.received === opts.subscribers }],
        },
        { figure: `capacity ${k}: received the command`, clicker: `${c.received}/${opts.subscribers}`, relay: `${r.received}/${opts.subscribers}`, unit: '' },
        { figure: `capacity ${k}: publish to last receipt`, clicker: c.allReceivedMs, relay: r.allReceivedMs, unit: 'ms' },
        { figure: `capacity ${k}: server RSS`, clicker: c.rssMiB, relay: r.rssMiB, unit: 'MiB' },
      ];
      const problems: string[] = [];
      for (const [name, x] of results) {
        if (x.errors > 0) {
          problems.push(
            `capacity ${name}: ${x.errors} errors (${x.failedOpens} failed opens, ${x.dropped} dropped, ${x.received} of ${opts.subscribers} received)` +
              `${x.firstErrors[0] ? `: ${x.firstErrors[0]}` : ''}`,
          );
        }
      }
      return { rows, data: { options: { ...opts }, clicker: json(c), relay: json(r), nchan: 'not run: the peer config allows 19,000 connections in all' }, problems };
    },
  };
}
