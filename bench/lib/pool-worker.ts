// A subscriber worker: a child process of the bench that holds a share of a
// fan-out's subscribers and stamps every command's arrival on the shared
// monotonic clock. One process may hold at most 20,000 open files (the hard
// limit here), so 10,000 subscribers on each of two or three servers, or
// 19,000 on one, only fit when spread over several processes.
//
// It tells the bench at once when all of its subscribers have a command (so
// the next one can be sent) and hands over the receive times only when asked,
// in one message per run rather than one per delivery.
//
// Started by lib/pool.ts; it exits when the bench goes away (IPC disconnect).
import { toMono } from './clock';
import { isToWorker, type FromWorker, type ToWorker } from './pool-protocol';
import { SseSubscriber } from './sse-client';
import { commandIdOf } from './targets';

interface Tracked {
  times: Float64Array;
  n: number;
  lastAt: number;
  complete: boolean;
}

const subs: SseSubscriber[] = [];
const tracked = new Map<string, Tracked>();
let maxCommands = 0;
let perWorker = 0;
let dropped = 0;
const dropReasons: string[] = [];

function send(message: FromWorker): void {
  process.send?.(message);
}

/** Live subscribers: those opened, less those the server has since closed. */
const live = () => subs.length - dropped;

function checkComplete(id: string, t: Tracked): void {
  if (!t.complete && t.n >= live()) {
    t.complete = true;
    send({ type: 'complete', id, lastAt: t.lastAt });
  }
}

async function open(m: Extract<ToWorker, { op: 'open' }>): Promise<void> {
  maxCommands = m.maxCommands;
  perWorker = m.count;
  const t0 = performance.now();
  let next = 0;
  let errors = 0;
  const firstErrors: string[] = [];
  let stop = false;
  const onEvent = (msg: { event: string; data: string; at: number }) => {
    if (msg.event !== m.eventName) return;
    const id = commandIdOf(msg.data);
    if (id === undefined) return;
    let t = tracked.get(id);
    if (!t) {
      if (tracked.size >= maxCommands) return;
      t = { times: new Float64Array(perWorker), n: 0, lastAt: 0, complete: false };
      tracked.set(id, t);
    }
    const at = toMono(msg.at);
    if (t.n < t.times.length) t.times[t.n] = at;
    t.n++;
    if (at > t.lastAt) t.lastAt = at;
    checkComplete(id, t);
  };
  const onClose = (reason: string) => {
    dropped++;
    if (dropReasons.length < 5) dropReasons.push(reason);
    // One fewer to wait for: a command may now have reached everyone still here.
    for (const [id, t] of tracked) checkComplete(id, t);
  };
  const worker = async () => {
    while (next < m.count && !stop) {
      next++;
      try {
        subs.push(
          await SseSubscriber.open({ host: m.host, port: m.port, path: m.path, timeoutMs: m.timeoutMs, onEvent, onClose }),
        );
      } catch (err) {
        errors++;
        if (firstErrors.length < 5) firstErrors.push((err as Error).message);
        if (!m.tolerant) stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(m.concurrency, m.count)) }, worker));
  send({ type: 'opened', open: subs.length, errors, firstErrors, seconds: (performance.now() - t0) / 1000 });
}

function collect(): void {
  const ids = [...tracked.keys()];
  const entries = [...tracked.values()];
  send({
    type: 'samples',
    ids,
    times: entries.map((t) => t.times.slice(0, Math.min(t.n, t.times.length))),
    received: entries.map((t) => t.n),
    dropped,
    dropReasons,
  });
}

function close(): void {
  for (const s of subs) s.close();
  subs.length = 0;
  send({ type: 'closed' });
}

process.on('message', (m: unknown) => {
  if (!isToWorker(m)) {
    send({ type: 'failed', message: `unexpected message ${JSON.stringify(m).slice(0, 200)}` });
    return;
  }
  const handle = async () => {
    if (m.op === 'open') await open(m);
    else if (m.op === 'collect') collect();
    else close();
  };
  handle().catch((err: unknown) => send({ type: 'failed', message: err instanceof Error ? err.message : String(err) }));
});
// The bench is gone (ended, or killed outright): nothing left to report to.
process.on('disconnect', () => process.exit(0));
